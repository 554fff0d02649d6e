/** Class names and small pieces every step shares, so the steps look like one studio. */

import type { ReactNode } from 'react';

export const card = 'rounded-lg border border-slate-200 bg-white p-4 shadow-sm dark:border-slate-700 dark:bg-slate-900';

export const button =
  'rounded-md px-3 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600 disabled:opacity-50';

export const input = 'rounded-md border border-slate-300 px-2 py-1 dark:border-slate-600 dark:bg-slate-800';

export function ErrorMessage({ error }: { error: unknown }) {
  return (
    <p role="alert" className="mt-2 whitespace-pre-line text-sm text-red-700 dark:text-red-400">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

/** A studio step: its heading and what it is for, then its content, as one section labelled by the heading. */
export function Step({
  id,
  title,
  summary,
  children,
}: {
  id: string;
  title: string;
  summary: ReactNode;
  children: ReactNode;
}) {
  return (
    <section aria-labelledby={`${id}-heading`} className="space-y-4">
      <div>
        <h1 id={`${id}-heading`} className="text-2xl font-semibold">
          {title}
        </h1>
        <p className="text-slate-600 dark:text-slate-300">{summary}</p>
      </div>
      {children}
    </section>
  );
}
