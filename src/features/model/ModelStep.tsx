import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useEffect, useState } from 'react';
import { BASE_PRECISION_LABELS, BASE_PRECISIONS, type BasePrecision } from '../../../core/base-precision';
import { hubErrorKind } from '../../../core/hub-errors';
import type { DescribedModel, DownloadProgress, ModelSource } from '../../../workers/engine/api';
import { HubSettingsPanel } from '../../components/HubSettingsPanel';
import { NextStep } from '../../components/NextStep';
import { button, card, ErrorMessage, Step } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { formatBytes, formatCount, formatSeconds } from '../../lib/format';
import { bundledModel, CATALOG } from '../../lib/model-catalog';
import { filesFromDrop, filesFromInput } from '../../lib/picked-files';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { useModel } from '../../stores/model';

/** The Model step: pick a Hub model or a local folder, see what it costs, download it onto the GPU. */
export function ModelStep() {
  const current = useModel((s) => s.source);
  const loaded = useModel((s) => s.loaded);
  const lost = useModel((s) => s.lost);
  const [source, setSource] = useState<ModelSource | null>(current);
  // A session restored while this step was open shows its model, unless another was picked meanwhile.
  useEffect(() => {
    if (current) setSource((picked) => picked ?? current);
  }, [current]);
  return (
    <Step
      id="model"
      title="Model"
      summary="Pick a pretrained model from the Hugging Face Hub, or a model folder on this computer."
    >
      {!loaded && !source && (
        <p className="text-sm text-slate-700 dark:text-slate-200" data-testid="first-visit">
          New here? Pick the <strong>offline demo model</strong> and load it, then try an example dataset in the Data
          step: everything works without a network, and a first run takes a minute.
        </p>
      )}
      {lost && (
        <p className="text-sm text-red-700 dark:text-red-300" role="alert" data-testid="device-lost">
          The GPU device was lost ({lost}), and the model with it: load the model again. A run it stopped resumes from
          its last checkpoint.
        </p>
      )}
      <ModelPicker source={source} onPick={setSource} />
      {source && <ModelDetails key={JSON.stringify(sourceKey(source))} source={source} onPick={setSource} />}
      {loaded && <NextStep to="data" what="drop a dataset or try an example" />}
      <div className="grid gap-4 md:grid-cols-2">
        <HubSettingsPanel />
        <CachePanel />
      </div>
    </Step>
  );
}

/** What identifies a source for queries and React keys (picked files by their paths, not their contents). */
function sourceKey(source: ModelSource) {
  return source.kind === 'files' ? { name: source.name, files: source.files.map((f) => f.path) } : source;
}

function sameSource(a: ModelSource, b: ModelSource): boolean {
  return JSON.stringify(sourceKey(a)) === JSON.stringify(sourceKey(b));
}

function ModelPicker({ source, onPick }: { source: ModelSource | null; onPick: (s: ModelSource) => void }) {
  const [repo, setRepo] = useState('');
  const [dragging, setDragging] = useState(false);
  const [pickError, setPickError] = useState<string | null>(null);
  const picked = source?.kind === 'hub' ? source.repo : source?.kind === 'bundled' ? source.name : null;
  const pickFiles = (result: { name: string; files: { path: string; file: File }[] }) => {
    if (!result.files.some((f) => f.path.endsWith('config.json'))) {
      setPickError(`${result.name}: no config.json among the ${result.files.length} files: pick a model folder.`);
      return;
    }
    setPickError(null);
    onPick({ kind: 'files', ...result });
  };
  return (
    <div className={card}>
      <fieldset>
        <legend className="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500 dark:text-slate-400">
          Models
        </legend>
        <ul className="grid gap-2 sm:grid-cols-2">
          <li>
            <label
              className={`flex cursor-pointer gap-2 rounded-md border p-2 text-sm ${picked === 'hone-tiny' ? 'border-indigo-600 bg-indigo-50 dark:bg-indigo-950' : 'border-slate-200 dark:border-slate-700'}`}
            >
              <input
                type="radio"
                name="catalog-model"
                checked={picked === 'hone-tiny'}
                onChange={() => onPick(bundledModel())}
              />
              <span>
                <span className="font-medium">Offline demo model (hone-tiny)</span>
                <span className="block text-slate-600 dark:text-slate-300">
                  Comes with the studio: no download, works offline.
                </span>
              </span>
            </label>
          </li>
          {CATALOG.map((entry) => (
            <li key={entry.repo}>
              <label
                className={`flex cursor-pointer gap-2 rounded-md border p-2 text-sm ${picked === entry.repo ? 'border-indigo-600 bg-indigo-50 dark:bg-indigo-950' : 'border-slate-200 dark:border-slate-700'}`}
              >
                <input
                  type="radio"
                  name="catalog-model"
                  checked={picked === entry.repo}
                  onChange={() => onPick({ kind: 'hub', repo: entry.repo })}
                />
                <span>
                  <span className="font-medium">{entry.name}</span>
                  <span className="block text-slate-600 dark:text-slate-300">{entry.note}</span>
                </span>
              </label>
            </li>
          ))}
        </ul>
      </fieldset>
      <form
        className="mt-3 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          const [name, revision] = repo.trim().split('@');
          if (name) onPick({ kind: 'hub', repo: name, revision });
        }}
      >
        <label className="flex grow flex-col text-sm">
          <span className="text-slate-600 dark:text-slate-300">Any Hub repo (org/name, optionally @revision)</span>
          <input
            value={repo}
            onChange={(e) => setRepo(e.target.value)}
            placeholder="HuggingFaceTB/SmolLM2-135M-Instruct"
            className="rounded-md border border-slate-300 px-2 py-1 dark:border-slate-600 dark:bg-slate-800"
          />
        </label>
        <button type="submit" className={`${button} bg-slate-800 text-white dark:bg-slate-200 dark:text-slate-900`}>
          Use this repo
        </button>
      </form>
      <section
        aria-label="Model folder on this computer"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={async (e) => {
          e.preventDefault();
          setDragging(false);
          pickFiles(await filesFromDrop(e.dataTransfer));
        }}
        className={`mt-3 rounded-md border-2 border-dashed p-3 text-sm ${dragging ? 'border-indigo-600 bg-indigo-50 dark:bg-indigo-950' : 'border-slate-300 dark:border-slate-600'}`}
      >
        Or drop a model folder here (config.json, model.safetensors, tokenizer files), or{' '}
        <label className="cursor-pointer font-medium text-indigo-700 underline dark:text-indigo-300">
          choose a folder
          <input
            type="file"
            className="sr-only"
            // @ts-expect-error: webkitdirectory is not in React's types, but every current browser supports it.
            webkitdirectory=""
            multiple
            onChange={(e) => e.target.files && pickFiles(filesFromInput(e.target.files))}
          />
        </label>
        .
        {pickError && (
          <p role="alert" className="mt-2 text-red-700 dark:text-red-400">
            {pickError}
          </p>
        )}
      </section>
    </div>
  );
}

/**
 * The picked model's facts (for a Hub model only its config.json and shard index are read, and a HEAD request made
 * for its size), and the button that downloads and loads it; trouble comes with a way out.
 */
function ModelDetails({ source, onPick }: { source: ModelSource; onPick: (s: ModelSource) => void }) {
  const settings = useHubSettings();
  const hub = hubSettings(settings);
  const setLoaded = useModel((s) => s.setLoaded);
  const loaded = useModel((s) => s.loaded);
  const [progress, setProgress] = useState<DownloadProgress | null>(null);
  const [picked, setPicked] = useState<BasePrecision | null>(null);
  const queryClient = useQueryClient();
  const info = useQuery({
    queryKey: ['describe-model', sourceKey(source), hub],
    queryFn: async (): Promise<DescribedModel> => getEngine().describeModel(source, hub),
    // Cached and bundled models need no network: never wait for the browser to say it is online.
    networkMode: 'always',
  });
  // The base precision: the one picked here, else the loaded model's (same source), else the model's default.
  const current = useModel((s) => s.source);
  const loadedBase = current && sameSource(current, source) ? loaded?.base : undefined;
  const base = picked ?? loadedBase ?? info.data?.defaultBase ?? 'f16';
  const load = useMutation({
    mutationFn: async () => getEngine().loadModel(source, hub, Comlink.proxy(setProgress), base),
    networkMode: 'always',
    onSuccess: (summary) => {
      setLoaded(summary, source);
      void queryClient.invalidateQueries({ queryKey: ['cache-entries'] });
    },
  });
  // Loaded here, or by the restored session from the same source.
  const restored = !load.isPending && current && sameSource(current, source) ? loaded : null;
  const summary = load.data ?? restored;
  const isLoaded = summary !== null && loaded === summary && summary.base === base;
  return (
    <div className={card} data-testid="model-details">
      {info.isPending && <p className="text-slate-600">Reading the model’s config…</p>}
      {info.isError && (
        <Trouble
          error={info.error}
          retrying={info.isFetching}
          onRetry={() => void info.refetch()}
          onDemo={() => onPick(bundledModel())}
        />
      )}
      {info.data && <ModelFacts info={info.data} base={base} onBase={setPicked} />}
      {info.data && (
        <div className="mt-3 flex flex-wrap items-center gap-3">
          <button
            type="button"
            disabled={load.isPending}
            onClick={() => load.mutate()}
            className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
          >
            {source.kind === 'hub' ? 'Download and load' : 'Load'}
          </button>
          {load.isPending && progress && <ProgressBar progress={progress} />}
          {load.isPending && !progress && <span className="text-sm text-slate-600">Reading…</span>}
        </div>
      )}
      {load.isError && (
        <Trouble
          error={load.error}
          retrying={false}
          onRetry={() => {
            setProgress(null);
            load.mutate();
          }}
          onDemo={() => onPick(bundledModel())}
        />
      )}
      {isLoaded && summary && (
        <p
          data-testid="model-loaded"
          className="mt-3 rounded bg-emerald-50 px-2 py-1 text-sm text-emerald-800 dark:bg-emerald-950 dark:text-emerald-200"
        >
          ✓ {summary.label} is on the GPU ({formatBytes(summary.gpuBytes)} of weights
          {summary.base === 'f16' ? '' : `, its projections at ${BASE_PRECISION_LABELS[summary.base]}`}, loaded in{' '}
          {formatSeconds(summary.seconds)}).{' '}
          {summary.tokenizer
            ? `Tokenizer ready${summary.tokenizer.hasChatTemplate ? ', with a chat template' : ', no chat template'}.`
            : `No tokenizer: ${summary.tokenizerError}`}
        </p>
      )}
    </div>
  );
}

/** An error reading or loading the model, with "Try again", and for an unreachable Hub the offline demo model. */
function Trouble({
  error,
  retrying,
  onRetry,
  onDemo,
}: {
  error: unknown;
  retrying: boolean;
  onRetry: () => void;
  onDemo: () => void;
}) {
  return (
    <div data-testid="model-trouble">
      <ErrorMessage error={error} />
      <div className="mt-2 flex flex-wrap gap-2">
        <button
          type="button"
          disabled={retrying}
          onClick={onRetry}
          className={`${button} border border-slate-300 dark:border-slate-600`}
        >
          Try again
        </button>
        {hubErrorKind(error) === 'unreachable' && (
          <button type="button" onClick={onDemo} className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}>
            Use the offline demo model
          </button>
        )}
      </div>
    </div>
  );
}

function ModelFacts({
  info,
  base,
  onBase,
}: {
  info: DescribedModel;
  base: BasePrecision;
  onBase: (base: BasePrecision) => void;
}) {
  const c = info.config;
  const memory = info.memory[base];
  const rows: [string, string][] = [
    ['Model', info.label],
    [
      'Architecture',
      `${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads (${c.numKvHeads} KV)`,
    ],
    ['Parameters', formatCount(info.parameters)],
    [
      info.downloads ? 'Download' : 'Weights file',
      info.downloadBytes === null ? 'unknown size' : formatBytes(info.downloadBytes),
    ],
    [
      'GPU memory to train',
      `about ${formatBytes(memory.total)} (LoRA r 16, 512 tokens; weights ${formatBytes(memory.weights)})`,
    ],
  ];
  return (
    <div data-testid="model-facts">
      <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
        {rows.map(([label, value]) => (
          <div key={label} className="contents">
            <dt className="text-slate-500 dark:text-slate-400">{label}</dt>
            <dd className="font-medium">{value}</dd>
          </div>
        ))}
      </dl>
      <fieldset className="mt-2 text-sm" data-testid="base-precision">
        <legend className="text-slate-500 dark:text-slate-400">
          Base precision (LoRA trains over the frozen base held at this precision; exports fold into the original
          weights)
        </legend>
        <div className="flex flex-wrap gap-3">
          {BASE_PRECISIONS.map((precision) => (
            <label key={precision} className="flex items-center gap-1">
              <input
                type="radio"
                name="base-precision"
                checked={base === precision}
                onChange={() => onBase(precision)}
              />
              {BASE_PRECISION_LABELS[precision]}
              <span className="text-slate-500 dark:text-slate-400">
                ({formatBytes(info.memory[precision].total)}
                {precision === info.defaultBase ? ', default' : ''})
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <p
        data-testid="model-fit"
        className={`mt-2 text-sm ${info.fit.fits ? 'text-slate-600 dark:text-slate-300' : 'font-semibold text-red-700 dark:text-red-400'}`}
      >
        {info.fit.reason}
      </p>
    </div>
  );
}

function ProgressBar({ progress }: { progress: DownloadProgress }) {
  const fraction = progress.totalBytes ? progress.receivedBytes / progress.totalBytes : null;
  return (
    <div className="min-w-64 grow text-sm" data-testid="download-progress">
      <progress className="w-full" value={fraction ?? undefined} max={1} aria-label={`Downloading ${progress.file}`} />
      <span className="text-slate-600 dark:text-slate-300">
        {progress.file}: {formatBytes(progress.receivedBytes)}
        {progress.totalBytes !== null && ` of ${formatBytes(progress.totalBytes)}`} at{' '}
        {formatBytes(progress.bytesPerSecond)}/s
        {progress.etaSeconds !== null && `, ${formatSeconds(progress.etaSeconds)} left`}
      </span>
    </div>
  );
}

function CachePanel() {
  const queryClient = useQueryClient();
  const entries = useQuery({
    queryKey: ['cache-entries'],
    // Files only: the entries that remember a file's absence are bookkeeping.
    queryFn: () => getEngine().cacheEntries(),
    networkMode: 'always',
  });
  const clear = useMutation({
    mutationFn: () => getEngine().clearCache(),
    networkMode: 'always',
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['cache-entries'] }),
  });
  const total = entries.data?.reduce((n, e) => n + e.bytes, 0) ?? 0;
  return (
    <details className={card} data-testid="cache-panel">
      <summary className="cursor-pointer text-sm font-semibold">
        Downloaded models ({entries.data ? `${entries.data.length} files, ${formatBytes(total)}` : '…'})
      </summary>
      <ul className="mt-2 max-h-40 overflow-auto text-xs">
        {entries.data?.map((e) => (
          <li key={e.key} className="flex justify-between gap-2">
            <span className="truncate">{e.key}</span>
            <span>{formatBytes(e.bytes)}</span>
          </li>
        ))}
      </ul>
      <button
        type="button"
        onClick={() => clear.mutate()}
        disabled={!entries.data?.length}
        className={`${button} mt-2 border border-slate-300 dark:border-slate-600`}
      >
        Clear the cache
      </button>
    </details>
  );
}
