import { CompareStep } from '../features/compare/CompareStep';
import { DataStep } from '../features/data/DataStep';
import { ExportStep } from '../features/export/ExportStep';
import { GpuPanel } from '../features/gpu/GpuPanel';
import { ModelStep } from '../features/model/ModelStep';
import { SavedRun } from '../features/train/SavedRun';
import { TrainStep } from '../features/train/TrainStep';
import { type StepId, useStudio } from '../stores/studio';
import { RestoreBanner } from './RestoreBanner';
import { StepBar } from './StepBar';

const STEP_VIEWS: Record<StepId, () => React.JSX.Element> = {
  model: ModelStep,
  data: DataStep,
  train: TrainStep,
  compare: CompareStep,
  export: ExportStep,
};

/** The studio shell: the five steps as navigation, the current step, and the GPU the engine runs on. */
export function App() {
  const step = useStudio((s) => s.step);
  const StepView = STEP_VIEWS[step];
  return (
    <div className="min-h-screen bg-slate-50 text-slate-900 dark:bg-slate-950 dark:text-slate-100">
      <header className="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-8 gap-y-2 px-4 py-3 sm:px-6">
          <div className="flex items-baseline gap-2">
            <span className="text-xl font-bold tracking-tight">Hone</span>
            <span className="text-sm text-slate-500 dark:text-slate-400">fine-tuning in your browser, on your GPU</span>
          </div>
          <StepBar />
        </div>
      </header>
      <div className="mx-auto grid max-w-7xl gap-6 px-4 py-6 sm:px-6 lg:grid-cols-[minmax(0,1fr)_22rem]">
        <main className="min-w-0">
          <RestoreBanner />
          <SavedRun />
          <StepView />
        </main>
        <aside className="min-w-0">
          <GpuPanel />
        </aside>
      </div>
    </div>
  );
}
