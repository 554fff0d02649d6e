import { useMutation } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useState } from 'react';
import { exportName } from '../../../core/export/base-model-id';
import type {
  GgufDtype,
  GgufKind,
  GgufProgress,
  KeptCheckpoint,
  PublishProgress,
  PublishRequest,
} from '../../../workers/engine/api';
import { HubSettingsPanel } from '../../components/HubSettingsPanel';
import { button, card, ErrorMessage, input } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { GgufChoiceFields, GgufProgressBar } from './GgufExport';

type What = PublishRequest['what'];

const WHAT: { what: What; label: string }[] = [
  { what: 'adapter', label: 'The adapter (PEFT), with its model card and metrics' },
  { what: 'merged', label: 'The tuned model (safetensors, loads with transformers)' },
  { what: 'gguf', label: 'A GGUF, with its Ollama Modelfile' },
];

function UploadLine({ progress }: { progress: PublishProgress }) {
  const text =
    progress.stage === 'checking'
      ? 'Checking the token and the repo…'
      : progress.stage === 'committing'
        ? `Committing ${progress.total} files…`
        : `${progress.stage === 'hashing' ? 'Hashing' : 'Uploading'} ${progress.file ?? ''}: ${progress.uploaded} of ${progress.total} files on the Hub`;
  return <p data-testid="publish-progress">{text}</p>;
}

/**
 * Publishing to a Hub repo: what (the adapter, the tuned model or a GGUF), the repo's name (a name alone goes to the
 * token's account), private or public, with the Hub settings' token; then a link to the repo. A cut upload is run
 * again to finish, without sending again what arrived.
 */
export function PublishPanel(props: { which: 'run' | KeptCheckpoint; model: string; method: string | null }) {
  const { which, model, method } = props;
  const hub = hubSettings(useHubSettings());
  const [what, setWhat] = useState<What>('adapter');
  const [gguf, setGguf] = useState<{ kind: GgufKind; dtype: GgufDtype }>({ kind: 'merged', dtype: 'q8_0' });
  const [repo, setRepo] = useState('');
  const [isPrivate, setPrivate] = useState(true);
  const [progress, setProgress] = useState<{ gguf?: GgufProgress; upload?: PublishProgress } | null>(null);
  const suggested = exportName(
    model,
    method ?? 'base',
    what === 'gguf' ? 'gguf' : what === 'merged' ? 'merged' : 'lora',
  );
  const published = useMutation({
    mutationFn: () => {
      setProgress(null);
      const target = { which, repo: repo.trim() || suggested, private: isPrivate };
      const request: PublishRequest = what === 'gguf' ? { ...target, what, gguf } : { ...target, what };
      return getEngine().publish(request, hub, Comlink.proxy(setProgress));
    },
  });
  return (
    <div className={`${card} space-y-3 text-sm`} data-testid="publish">
      <h3 className="font-semibold">Publish to the Hugging Face Hub</h3>
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">What</span>
        <select className={input} value={what} onChange={(e) => setWhat(e.target.value as What)}>
          {WHAT.map((w) => (
            <option key={w.what} value={w.what}>
              {w.label}
            </option>
          ))}
        </select>
      </label>
      {what === 'gguf' && <GgufChoiceFields kind={gguf.kind} dtype={gguf.dtype} onChange={setGguf} />}
      <div className="flex flex-wrap items-end gap-3">
        <label className="flex min-w-0 flex-col">
          <span className="text-slate-600 dark:text-slate-300">Repo (ORG/NAME, or a name for your account)</span>
          <input className={input} value={repo} placeholder={suggested} onChange={(e) => setRepo(e.target.value)} />
        </label>
        <label className="flex items-center gap-2">
          <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} />
          Private
        </label>
      </div>
      {!hub.token && (
        <p className="text-slate-600 dark:text-slate-300">
          Publishing needs an access token with write permission: set it in the Hub settings below.
        </p>
      )}
      <HubSettingsPanel startOpen={!hub.token} />
      <button
        type="button"
        className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
        disabled={published.isPending || !hub.token}
        onClick={() => published.mutate()}
      >
        Publish
      </button>
      {published.isPending && progress?.gguf && !progress.upload && <GgufProgressBar progress={progress.gguf} />}
      {published.isPending && progress?.upload && <UploadLine progress={progress.upload} />}
      {published.isSuccess && (
        <p data-testid="publish-result">
          Published{published.data.created ? ' to a new repo' : ''}:{' '}
          <a
            className="text-indigo-700 underline dark:text-indigo-300"
            href={published.data.url}
            target="_blank"
            rel="noreferrer"
          >
            {published.data.url}
          </a>
        </p>
      )}
      {published.isError && <ErrorMessage error={published.error} />}
    </div>
  );
}
