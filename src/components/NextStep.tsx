import { type StepId, useStudio } from '../stores/studio';
import { button } from './ui';

/** The step's way on: a button to the next step, saying what happens there (in words, not the step's name). */
export function NextStep({ to, what }: { to: StepId; what: string }) {
  const goTo = useStudio((s) => s.goTo);
  return (
    <div className="flex justify-end" data-testid="next-step">
      <button
        type="button"
        onClick={() => {
          goTo(to);
          window.scrollTo({ top: 0 });
        }}
        className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
      >
        Next: {what} →
      </button>
    </div>
  );
}
