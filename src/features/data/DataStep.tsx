import { useMutation } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useEffect, useState } from 'react';
import type { DataProgress } from '../../../workers/data/api';
import { NextStep } from '../../components/NextStep';
import { card, ErrorMessage, Step } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { formatBytes } from '../../lib/format';
import { useDataset } from '../../stores/dataset';
import { DatasetDrop } from './DatasetDrop';
import { DatasetReport } from './DatasetReport';
import { ExampleDatasets } from './ExampleDatasets';
import { FormatChoice } from './FormatChoice';
import { TokenReport } from './TokenReport';

/** The Data step: drop dataset files, see what Hone made of every record, and how the model will read them. */
export function DataStep() {
  const { files, choice, summary, setFiles, setSummary } = useDataset();
  const [progress, setProgress] = useState<DataProgress | null>(null);
  const load = useMutation({
    mutationFn: async (input: { files: File[]; choice: typeof choice }) => {
      setProgress(null);
      const named = input.files.map((file) => ({ name: file.name, blob: file }));
      return getDataWorker().load(named, input.choice, Comlink.proxy(setProgress));
    },
    onSuccess: (result) => setSummary('unusable' in result ? null : result),
    onError: () => setSummary(null),
  });
  const unusable = load.data && 'unusable' in load.data ? load.data : null;
  const { mutate } = load;
  useEffect(() => {
    if (files.length > 0) mutate({ files, choice });
  }, [files, choice, mutate]);

  return (
    <Step
      id="data"
      title="Data"
      summary="Drop a dataset: JSONL, JSON, CSV, TSV, Parquet or plain text. Hone detects its shape, checks every record and shows the first ones as the model will read them."
    >
      <DatasetDrop files={files} onFiles={setFiles} />
      <ExampleDatasets onFiles={setFiles} hasData={files.length > 0} />
      {load.isPending && <ReadingProgress progress={progress} />}
      {load.isError && <ErrorMessage error={load.error} />}
      {unusable && !load.isPending && (
        <>
          <div className={`${card} [&>p]:mt-0`}>
            <ErrorMessage error={unusable.unusable} />
          </div>
          {/* A shape to read it as, where it has fields to map (not for an empty file or prose). */}
          {unusable.columns.length > 0 && (
            <FormatChoice key={`unusable:${unusable.columns.join()}`} columns={unusable.columns} />
          )}
        </>
      )}
      {summary && !load.isPending && (
        <>
          <DatasetReport summary={summary} />
          {/* Keyed by what was read, so a new file's choice starts from its own detection, not the last file's. */}
          <FormatChoice
            key={JSON.stringify([files.map((f) => f.name), summary.format, summary.mapping])}
            columns={summary.columns}
            summary={summary}
          />
          <TokenReport summary={summary} />
          <NextStep to="train" what="pick a method and train" />
        </>
      )}
    </Step>
  );
}

function ReadingProgress({ progress }: { progress: DataProgress | null }) {
  if (progress?.stage !== 'reading') return <p className="text-sm text-slate-600">Reading…</p>;
  const p = progress.progress;
  return (
    <div className="text-sm" data-testid="data-progress">
      <progress
        className="w-full"
        value={p.bytesRead / Math.max(1, p.totalBytes)}
        max={1}
        aria-label="Reading the dataset"
      />
      <span className="text-slate-600 dark:text-slate-300">
        {p.file}: {formatBytes(p.bytesRead)} of {formatBytes(p.totalBytes)}, {p.records.toLocaleString()} records so far
      </span>
    </div>
  );
}
