import { CompareStep } from '../features/compare/CompareStep';
import { DataStep } from '../features/data/DataStep';
import { ExportStep } from '../features/export/ExportStep';
import { GpuPanel } from '../features/gpu/GpuPanel';
import { ModelStep } from '../features/model/ModelStep';
import { TrainStep } from '../features/train/TrainStep';
import { STEPS, type StepId, useStudio } from './store';

const STEP_VIEWS: Record<StepId, () => React.JSX.Element> = {
  model: ModelStep,
  data: DataStep,
  train: TrainStep,
  compare: CompareStep,
  export: ExportStep,
};

/** The studio shell: the five steps as navigation, the current step, and the GPU the engine runs on. */
export function App() {
  const { step, goTo } = useStudio();
  const StepView = STEP_VIEWS[step];
  return (
    <div className="min-h-screen bg-slate-50 text-slate-900 dark:bg-slate-950 dark:text-slate-100">
      <header className="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-8 gap-y-2 px-6 py-3">
          <div className="flex items-baseline gap-2">
            <span className="text-xl font-bold tracking-tight">Hone</span>
            <span className="text-sm text-slate-500 dark:text-slate-400">fine-tuning in your browser, on your GPU</span>
          </div>
          <nav aria-label="Studio steps">
            <ol className="flex flex-wrap gap-1">
              {STEPS.map((s, i) => (
                <li key={s.id}>
                  <button
                    type="button"
                    onClick={() => goTo(s.id)}
                    aria-current={step === s.id ? 'step' : undefined}
                    title={s.hint}
                    className={`rounded-md px-3 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600 ${
                      step === s.id
                        ? 'bg-indigo-600 text-white'
                        : 'text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800'
                    }`}
                  >
                    <span className="mr-1.5 opacity-70">{i + 1}</span>
                    {s.label}
                  </button>
                </li>
              ))}
            </ol>
          </nav>
        </div>
      </header>
      <div className="mx-auto grid max-w-7xl gap-6 px-6 py-6 lg:grid-cols-[1fr_22rem]">
        <main>
          <StepView />
        </main>
        <aside>
          <GpuPanel />
        </aside>
      </div>
    </div>
  );
}
