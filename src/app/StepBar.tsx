import { formatBytes } from '../lib/format';
import { useDataset } from '../stores/dataset';
import { useModel } from '../stores/model';
import { STEPS, type StepId, useStudio } from '../stores/studio';
import { useTraining } from '../stores/training';

const RUN_STATE = {
  idle: null,
  preparing: 'preparing',
  running: 'training',
  paused: 'paused',
  finished: '✓ finished',
  stopped: '✓ stopped',
  failed: 'failed',
} as const;

/** What each step holds now, under its name: the model, the dataset and its size, the run's state. */
function useStepStates(): Record<StepId, string | null> {
  const loaded = useModel((s) => s.loaded);
  const files = useDataset((s) => s.files);
  const summary = useDataset((s) => s.summary);
  const status = useTraining((s) => s.status);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const run = RUN_STATE[status];
  return {
    model: loaded ? `✓ ${loaded.label}` : null,
    data:
      summary && files.length > 0
        ? `✓ ${files[0].name}${files.length > 1 ? ` +${files.length - 1}` : ''}, ${formatBytes(bytes)}`
        : null,
    train: run,
    compare: status === 'finished' || status === 'stopped' || status === 'paused' ? 'ready' : null,
    export: status === 'finished' || status === 'stopped' || status === 'paused' ? 'ready' : null,
  };
}

/** The studio's steps as navigation, each with its state. */
export function StepBar() {
  const { step, goTo } = useStudio();
  const states = useStepStates();
  return (
    <nav aria-label="Studio steps" className="min-w-0 max-w-full">
      <ol className="flex flex-wrap gap-1">
        {STEPS.map((s, i) => (
          <li key={s.id}>
            <button
              type="button"
              onClick={() => goTo(s.id)}
              aria-current={step === s.id ? 'step' : undefined}
              title={s.hint}
              className={`flex flex-col items-start rounded-md px-3 py-1.5 text-left text-sm font-medium focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600 ${
                step === s.id
                  ? 'bg-indigo-600 text-white'
                  : 'text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800'
              }`}
            >
              <span>
                <span className="mr-1.5 opacity-70">{i + 1}</span>
                {s.label}
              </span>
              {states[s.id] && (
                <span
                  data-testid={`step-state-${s.id}`}
                  className={`max-w-40 truncate text-xs font-normal ${step === s.id ? 'text-indigo-100' : 'text-slate-500 dark:text-slate-400'}`}
                >
                  {states[s.id]}
                </span>
              )}
            </button>
          </li>
        ))}
      </ol>
    </nav>
  );
}
