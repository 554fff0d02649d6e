/** Class names and small pieces every step shares, so the steps look like one studio. */

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
