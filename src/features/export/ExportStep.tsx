import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { baseModelId, exportName } from '../../../core/export/base-model-id';
import { trlScript } from '../../../core/export/trl-job';
import { zipFolder } from '../../../core/export/zip';
import type { KeptCheckpoint, ModelSource } from '../../../workers/engine/api';
import { CheckpointChoice } from '../../components/CheckpointChoice';
import { button, card, ErrorMessage, Step } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { getEngine } from '../../lib/engine';
import { useDataset } from '../../stores/dataset';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { useModel } from '../../stores/model';
import { useTraining } from '../../stores/training';

type Which = 'run' | KeptCheckpoint;

/** Hands a file to the browser as a download. */
function download(fileName: string, file: Blob): void {
  const url = URL.createObjectURL(file);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The Export step: the adapter in PEFT's format, with its model card and metrics, as one zip. */
export function ExportStep() {
  const loaded = useModel((s) => s.loaded);
  const status = useTraining((s) => s.status);
  const hasRun = status === 'finished' || status === 'stopped' || status === 'paused';
  const [which, setWhich] = useState<Which>('run');
  const exported = useMutation({
    mutationFn: ({ w, merged }: { w: Which; merged: boolean }) =>
      merged ? getEngine().exportMerged(w) : getEngine().exportAdapter(w),
    onSuccess: (result) => download(result.fileName, result.zip),
  });
  return (
    <Step
      id="export"
      title="Export"
      summary="Download the adapter in PEFT's format, with a model card and the run's metrics, to load with Hugging Face PEFT anywhere."
    >
      {!loaded && <p className="text-sm text-slate-600 dark:text-slate-300">Load the run's model in the Model step.</p>}
      {loaded && (
        <div className={`${card} space-y-3 text-sm`} data-testid="export-adapter">
          <fieldset className="flex flex-wrap items-center gap-4">
            <legend className="sr-only">Which adapter</legend>
            <label className="flex items-center gap-2">
              <input type="radio" checked={which === 'run'} onChange={() => setWhich('run')} />
              This run’s adapter{!hasRun && ' (train one first)'}
            </label>
            <CheckpointChoice chosen={typeof which === 'object' ? which : null} onChoose={setWhich} />
          </fieldset>
          <div className="flex flex-wrap gap-3">
            <button
              type="button"
              className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
              disabled={exported.isPending}
              onClick={() => exported.mutate({ w: which, merged: false })}
            >
              Download the adapter (.zip)
            </button>
            <button
              type="button"
              className={`${button} border border-indigo-600 text-indigo-700 dark:text-indigo-300`}
              disabled={exported.isPending}
              onClick={() => exported.mutate({ w: which, merged: true })}
            >
              Download the tuned model (.zip)
            </button>
          </div>
          <p className="text-slate-600 dark:text-slate-300">
            The adapter loads with PEFT on top of the base model. The tuned model has the adapter folded into its
            weights (or is the weights themselves, for a run that trained every one), in the Hugging Face layout, and
            loads with transformers alone.
          </p>
          {exported.isPending && <p>Preparing the download…</p>}
          {exported.isSuccess && (
            <p data-testid="export-result">
              {exported.data.fileName}: {exported.data.files.join(', ')}
            </p>
          )}
          {exported.isError && <ErrorMessage error={exported.error} />}
        </div>
      )}
      {loaded && <JobExport model={loaded.label} />}
    </Step>
  );
}

/**
 * The run as a job for GPU servers: the dataset as Hone split it, in TRL's formats, and a TRL script with the Train
 * step's method and settings; the adapter it trains imports back into Compare.
 */
/** A model folder's files the job needs (config, weights, tokenizer), by name. */
const MODEL_FILE =
  /^(config\.json|generation_config\.json|.*\.safetensors|model\.safetensors\.index\.json|tokenizer.*\.json|special_tokens_map\.json|vocab\.json|merges\.txt)$/;

/** The files of a base model that is not on the Hub: served beside the studio, or picked from this computer. */
async function baseModelFiles(source: Exclude<ModelSource, { kind: 'hub' }>): Promise<[string, Blob][]> {
  if (source.kind === 'files') {
    return source.files
      .map((f) => [f.path.split('/').at(-1) ?? f.path, f.file] as [string, Blob])
      .filter(([name]) => MODEL_FILE.test(name));
  }
  const files: [string, Blob][] = [];
  for (const name of source.files) {
    const response = await fetch(new URL(name, source.url));
    if (!response.ok) throw new Error(`${source.name}/${name}: the studio's server answered HTTP ${response.status}`);
    files.push([name, await response.blob()]);
  }
  return files;
}

function JobExport({ model }: { model: string }) {
  const settings = useTraining((s) => s.settings);
  const reward = useTraining((s) => s.reward);
  const dataset = useDataset();
  const source = useModel((s) => s.source);
  const hub = hubSettings(useHubSettings());
  const job = useMutation({
    mutationFn: async () => {
      if (!settings) throw new Error('Open the Train step to choose the settings first.');
      if (!dataset.summary || !source) throw new Error('Drop a dataset in the Data step first.');
      // The split training uses (a rendering already done is reused).
      await getDataWorker().tokenize(source, hub, dataset.settings, 0);
      const data = await getDataWorker().jobData(dataset.settings.trainOnPrompt);
      // A base not on the Hub (the demo model, a local folder) travels with the job, in ./base-model.
      const base = source.kind === 'hub' ? [] : await baseModelFiles(source);
      const script = trlScript(settings, {
        baseModel: source.kind === 'hub' ? baseModelId(model) : './base-model',
        hasValidation: data.validation !== '',
        trainOnPrompt: dataset.settings.trainOnPrompt,
        rewardRule: reward?.kind === 'rule' ? reward.source : undefined,
      });
      const files = new Map<string, Blob>([
        ['train.py', new Blob([script])],
        ['train.jsonl', new Blob([data.train])],
      ]);
      if (data.validation !== '') files.set('validation.jsonl', new Blob([data.validation]));
      for (const [name, blob] of base) files.set(`base-model/${name}`, blob);
      const name = exportName(model, settings.method, 'job');
      return { fileName: `${name}.zip`, zip: await zipFolder(name, files), files: [...files.keys()] };
    },
    onSuccess: (result) => download(result.fileName, result.zip),
  });
  return (
    <div className={`${card} space-y-3 text-sm`} data-testid="export-job">
      <p className="text-slate-600 dark:text-slate-300">
        Outgrown the browser? Take the same fine-tune to GPU servers: the dataset as Hone split it and a ready-to-run
        TRL script with this method and these settings. The adapter it writes imports back here for comparing.
      </p>
      <button
        type="button"
        className={`${button} border border-indigo-600 text-indigo-700 dark:text-indigo-300`}
        disabled={job.isPending}
        onClick={() => job.mutate()}
      >
        Download the job for TRL (.zip)
      </button>
      {job.isSuccess && (
        <p data-testid="job-result">
          {job.data.fileName}: {job.data.files.join(', ')}
        </p>
      )}
      {job.isError && <ErrorMessage error={job.error} />}
    </div>
  );
}
