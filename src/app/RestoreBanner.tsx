import { button, card } from '../components/ui';
import { formatBytes } from '../lib/format';
import { useModel } from '../stores/model';
import { useRestore } from '../stores/restore';
import { retryModel } from './session';

/** Putting the last session's model back on the GPU: its progress, or why it failed and what to do. */
export function RestoreBanner() {
  const r = useRestore();
  const source = useModel((s) => s.source);
  if (r.status === 'loading-model') {
    return (
      <p className={`${card} mb-4 text-sm`} data-testid="restore-banner" role="status">
        Restoring your session: loading {r.model} onto the GPU
        {r.progress ? ` (${r.progress.file}, ${formatBytes(r.progress.receivedBytes)})` : ''}…
      </p>
    );
  }
  if (r.status !== 'failed') return null;
  return (
    <div className={`${card} mb-4 border-amber-400 text-sm`} data-testid="restore-banner" role="alert">
      <p>
        Your last session used {r.model}, which could not be loaded again: {r.message} Your dataset and settings are
        back; pick a model in the Model step{source ? '' : ' (the offline demo model always works)'}, or try again.
      </p>
      <button type="button" className={`${button} mt-2 border border-slate-300`} onClick={() => void retryModel()}>
        Try again
      </button>
    </div>
  );
}
