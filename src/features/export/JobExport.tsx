import { useMutation } from '@tanstack/react-query';
import { baseModelId, exportName } from '../../../core/export/base-model-id';
import { trlScript } from '../../../core/export/trl-job';
import { zipFolder } from '../../../core/export/zip';
import type { ModelSource } from '../../../workers/engine/api';
import { button, card, ErrorMessage } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { download } from '../../lib/download';
import { useDataset } from '../../stores/dataset';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { useModel } from '../../stores/model';
import { useTraining } from '../../stores/training';

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

/**
 * The run as a job for GPU servers: the dataset as Hone split it, in TRL's formats, and a TRL script with the Train
 * step's method and settings; the adapter it trains imports back into Compare.
 */
export function JobExport({ model }: { model: string }) {
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
