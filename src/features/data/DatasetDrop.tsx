import { useState } from 'react';
import { card } from '../../components/ui';
import { formatBytes } from '../../lib/format';

const ACCEPT = '.jsonl,.ndjson,.json,.csv,.tsv,.parquet,.txt,.md,.markdown';

/** Where dataset files arrive: dropped (several at once) or picked with the file dialog. */
export function DatasetDrop({ files, onFiles }: { files: File[]; onFiles: (files: File[]) => void }) {
  const [dragging, setDragging] = useState(false);
  return (
    <section
      aria-label="Dataset files"
      data-testid="dataset-drop"
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (e.dataTransfer.files.length > 0) onFiles([...e.dataTransfer.files]);
      }}
      className={`${card} border-2 border-dashed text-sm ${dragging ? 'border-indigo-600 bg-indigo-50 dark:bg-indigo-950' : ''}`}
    >
      <p>
        Drop dataset files here, or{' '}
        <label className="cursor-pointer font-medium text-indigo-700 underline dark:text-indigo-300">
          choose files
          <input
            type="file"
            className="sr-only"
            multiple
            accept={ACCEPT}
            onChange={(e) => {
              if (e.target.files && e.target.files.length > 0) onFiles([...e.target.files]);
              e.target.value = '';
            }}
          />
        </label>
        . Several files are read as one dataset. They stay on this computer.
      </p>
      {files.length > 0 && (
        <>
          <ul className="mt-2 text-slate-600 dark:text-slate-300">
            {files.map((f) => (
              <li key={f.name}>
                {f.name} <span className="text-slate-500 dark:text-slate-400">({formatBytes(f.size)})</span>
              </li>
            ))}
          </ul>
          <p className="mt-1 text-slate-500 dark:text-slate-400">
            A copy ({formatBytes(files.reduce((n, f) => n + f.size, 0))}) is kept in this browser, so a reload keeps it.{' '}
            <button type="button" className="underline" onClick={() => onFiles([])}>
              Forget it
            </button>
          </p>
        </>
      )}
    </section>
  );
}
