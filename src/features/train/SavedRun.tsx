import { useQuery, useQueryClient } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useEffect } from 'react';
import { button, card, ErrorMessage } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { useModel } from '../../stores/model';
import { useRestore } from '../../stores/restore';
import { useStudio } from '../../stores/studio';
import { useTraining } from '../../stores/training';

/**
 * A run an earlier page left behind (a reload, a closed tab, a crash, a lost GPU device), announced on every step
 * and resumed in one click once its model is back on the GPU (the restored session loads it from the cache).
 */
export function SavedRun() {
  const loaded = useModel((s) => s.loaded);
  const restoring = useRestore();
  const training = useTraining();
  const goTo = useStudio((s) => s.goTo);
  const queryClient = useQueryClient();
  const saved = useQuery({ queryKey: ['saved-run'], queryFn: () => getEngine().savedRun() });
  const { refetch } = saved;
  useEffect(() => {
    if (training.status === 'failed') void refetch();
  }, [training.status, refetch]);
  // Offered on a fresh page, and after a run failed (a lost GPU device, a crash of the worker) at its checkpoint.
  if (!saved.data || (training.status !== 'idle' && training.status !== 'failed')) return null;
  const run = saved.data;
  const ready = loaded?.label === run.model;
  const forget = () => queryClient.setQueryData(['saved-run'], null);
  const resume = async () => {
    training.reset('preparing');
    training.setSettings(run.settings);
    forget();
    goTo('train');
    try {
      await getEngine().resumeSavedRun(Comlink.proxy(training.handle));
    } catch (error) {
      training.fail((error as Error).message);
    }
  };
  return (
    <div className={`${card} mb-4 border-amber-400`} data-testid="saved-run" role="status">
      <p className="text-sm">
        {run.step > 0
          ? `An interrupted ${run.settings.method.toUpperCase()} run on `
          : `A ${run.settings.method.toUpperCase()} run on `}
        <strong>{run.model}</strong> ({run.files.join(', ')}){' '}
        {run.step > 0
          ? `stopped at step ${run.step}. It continues from that checkpoint, with its own copy of the data.`
          : 'stopped before its first checkpoint. It can start again with the same settings and data.'}
      </p>
      {!ready && (
        <p className="mt-1 text-sm text-slate-600 dark:text-slate-300">
          {restoring.status === 'loading-model' && restoring.model
            ? `Loading ${restoring.model} again…`
            : `Load ${run.model} in the Model step to resume it.`}
        </p>
      )}
      <div className="mt-2 flex gap-2">
        <button type="button" disabled={!ready} className={`${button} bg-indigo-600 text-white`} onClick={resume}>
          {run.step > 0 ? 'Resume the run' : 'Start it again'}
        </button>
        <button
          type="button"
          className={`${button} border border-slate-300`}
          onClick={async () => {
            await getEngine().discardSavedRun();
            forget();
          }}
        >
          Discard it
        </button>
      </div>
      {saved.isError && <ErrorMessage error={saved.error} />}
    </div>
  );
}
