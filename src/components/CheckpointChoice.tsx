import { useQuery } from '@tanstack/react-query';
import { getEngine } from '../lib/engine';
import { input } from './ui';

/**
 * One of the run's kept checkpoints, as a radio with its step picked from a list (Compare and Export offer the
 * same); nothing when the run kept none. `chosen` is the picked step, or null while another choice is on.
 */
export function CheckpointChoice(props: { chosen: number | null; onChoose: (step: number) => void }) {
  const { chosen, onChoose } = props;
  const checkpoints = useQuery({ queryKey: ['checkpoints'], queryFn: () => getEngine().checkpoints() });
  const kept = checkpoints.data;
  if (!kept) return null;
  const last = kept.steps[kept.steps.length - 1];
  return (
    <label className="flex items-center gap-2">
      <input
        type="radio"
        aria-label="A checkpoint of the run"
        checked={chosen !== null}
        onChange={() => onChoose(last)}
      />
      The {kept.method} run at step
      <select
        className={input}
        aria-label="Checkpoint step"
        value={chosen ?? last}
        onChange={(e) => onChoose(Number(e.target.value))}
      >
        {kept.steps.map((step) => (
          <option key={step} value={step}>
            {step}
          </option>
        ))}
      </select>
    </label>
  );
}
