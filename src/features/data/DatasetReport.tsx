import type { DatasetSummary } from '../../../workers/data/api';
import { button, card } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { formatBytes } from '../../lib/format';

/** Hands the browser a text file to save. */
function download(name: string, text: string, type: string) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** What came out of the files: per file, the usable and skipped records, why records were skipped, and which. */
export function DatasetReport({ summary }: { summary: DatasetSummary }) {
  return (
    <div className={card} data-testid="dataset-report">
      <p className="text-lg font-medium" data-testid="dataset-counts">
        {summary.records.toLocaleString()} usable, {summary.skipped.toLocaleString()} skipped
      </p>
      <table className="mt-2 w-full text-left text-sm">
        <thead className="text-slate-500 dark:text-slate-400">
          <tr>
            <th className="font-normal">File</th>
            <th className="font-normal">Size</th>
            <th className="font-normal">Usable</th>
            <th className="font-normal">Skipped</th>
          </tr>
        </thead>
        <tbody>
          {summary.files.map((f) => (
            <tr key={f.name} className="align-top">
              <td>
                {f.name}
                {f.error && <span className="block text-red-700 dark:text-red-400">{f.error}</span>}
                {f.notice && <span className="block text-amber-700 dark:text-amber-400">{f.notice}</span>}
              </td>
              <td>{formatBytes(f.bytes)}</td>
              <td>{f.records.toLocaleString()}</td>
              <td>{f.skipped.toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {summary.skipped > 0 && (
        <div className="mt-3 text-sm">
          <h2 className="font-semibold">Why records were skipped</h2>
          <ul className="list-disc pl-5">
            {summary.reasons.slice(0, 8).map((r) => (
              <li key={r.reason}>
                {r.count.toLocaleString()} × {r.reason}
              </li>
            ))}
          </ul>
          <details className="mt-2">
            <summary className="cursor-pointer">
              The skipped records
              {summary.issues.length < summary.skipped && ` (the first ${summary.issues.length})`}
            </summary>
            <ul className="mt-1 max-h-60 overflow-auto font-mono text-xs" data-testid="dataset-issues">
              {summary.issues.map((i) => (
                <li key={`${i.file}:${i.line}:${i.reason}`}>
                  {i.file}
                  {i.line > 0 && `:${i.line}`}: {i.reason}
                </li>
              ))}
            </ul>
          </details>
          <button
            type="button"
            className={`${button} mt-2 border border-slate-300 dark:border-slate-600`}
            onClick={async () => download('dataset-errors.csv', await getDataWorker().issuesCsv(), 'text/csv')}
          >
            Download the error list (CSV)
          </button>
        </div>
      )}
    </div>
  );
}
