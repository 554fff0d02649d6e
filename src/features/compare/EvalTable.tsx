import Papa from 'papaparse';
import { useState } from 'react';
import { formatScore, scoreInfo } from '../../../core/eval/metrics';
import type { EvalReport, EvalRow } from '../../../workers/engine/api';
import { button } from '../../components/ui';
import { download } from '../../lib/download';

/** The rows where the contestants' scores differ on some metric: where to look first. */
function disagrees(row: EvalRow, metrics: string[]): boolean {
  return metrics.some((m) => new Set(row.answers.map((a) => a.scores[m])).size > 1);
}

/** The most any model after the base improved on the base's score on `metric` (0 where none has both). */
function gain(row: EvalRow, metric: string): number {
  const [base, ...others] = row.answers.map((a) => a.scores[metric]);
  const sign = scoreInfo(metric).higherIsBetter ? 1 : -1;
  const gains = others.flatMap((s) => (base == null || s == null ? [] : [sign * (s - base)]));
  return gains.length === 0 ? 0 : Math.max(...gains);
}

/** Every example as a CSV row: id, prompt, reference, then each contestant's answer and scores. */
function csv(report: EvalReport): string {
  const fields = ['id', 'prompt', 'reference'];
  for (const c of report.contestants) fields.push(`${c.name} answer`, ...report.metrics.map((m) => `${c.name} ${m}`));
  const data = report.rows.map((row) => [
    row.id,
    row.prompt,
    row.reference ?? '',
    ...row.answers.flatMap((a) => [a.text, ...report.metrics.map((m) => a.scores[m] ?? '')]),
  ]);
  return Papa.unparse({ fields, data });
}

function jsonl(report: EvalReport): string {
  return report.rows
    .map((row) =>
      JSON.stringify({
        ...row,
        answers: Object.fromEntries(row.answers.map((a, i) => [report.contestants[i].name, a])),
      }),
    )
    .join('\n');
}

/**
 * Every example with each model's answer and scores: sorted by the most a model gained over the base on a metric
 * (or in file order), the examples where the models disagree alone if asked; downloaded as CSV or JSONL.
 */
export function EvalTable({ report }: { report: EvalReport }) {
  const [sortBy, setSortBy] = useState<string | null>(null);
  const [onlyDisagreeing, setOnlyDisagreeing] = useState(false);
  const rows = report.rows.filter((row) => !onlyDisagreeing || disagrees(row, report.metrics));
  const sorted = sortBy ? [...rows].sort((a, b) => gain(b, sortBy) - gain(a, sortBy)) : rows;
  const label = (m: string) => scoreInfo(m).label;
  return (
    <div className="space-y-2" data-testid="eval-table">
      <div className="flex flex-wrap items-center gap-3">
        <label className="flex items-center gap-1">
          <input type="checkbox" checked={onlyDisagreeing} onChange={(e) => setOnlyDisagreeing(e.target.checked)} />
          Only where the models score differently ({report.rows.filter((r) => disagrees(r, report.metrics)).length})
        </label>
        <button
          type="button"
          className={`${button} border border-slate-300`}
          onClick={() => download('evaluation.csv', new Blob([csv(report)], { type: 'text/csv' }))}
        >
          Download CSV
        </button>
        <button
          type="button"
          className={`${button} border border-slate-300`}
          onClick={() => download('evaluation.jsonl', new Blob([jsonl(report)]))}
        >
          Download JSONL
        </button>
      </div>
      <div className="max-h-96 overflow-auto">
        <table className="w-full text-left align-top">
          <thead className="sticky top-0 bg-white dark:bg-slate-900">
            <tr>
              <th className="font-medium">Example</th>
              <th className="font-medium">Reference</th>
              {report.contestants.map((c) => (
                <th key={c.name} className="font-medium">
                  {c.name}
                </th>
              ))}
              {report.metrics.map((m) => (
                <th key={m} className="font-medium">
                  <button
                    type="button"
                    className="underline"
                    onClick={() => setSortBy(sortBy === m ? null : m)}
                    aria-pressed={sortBy === m}
                    title={`Sort by the most a model gained over the base in ${label(m)}`}
                  >
                    {label(m)}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {sorted.map((row) => (
              <tr key={row.id} className="border-t border-slate-200 dark:border-slate-700">
                <td>
                  <div className="text-xs text-slate-500 dark:text-slate-400">{row.id}</div>
                  {row.prompt}
                </td>
                <td>{row.reference ?? '—'}</td>
                {row.answers.map((a, i) => (
                  <td key={report.contestants[i].name}>{a.text}</td>
                ))}
                {report.metrics.map((m) => (
                  <td key={m}>
                    {row.answers.map((a) => (a.scores[m] == null ? '—' : formatScore(m, a.scores[m]))).join(' → ')}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
