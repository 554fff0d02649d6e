import { useQuery } from '@tanstack/react-query';
import type { Method } from '../../core/training/settings';
import type { KeptCheckpoint, RunCheckpoints } from '../../workers/engine/api';
import { getEngine } from '../lib/engine';
import { useModel } from '../stores/model';
import { input } from './ui';

function runLabel(run: RunCheckpoints): string {
  return `${run.method.toUpperCase()} run of ${new Date(run.started).toLocaleString()}`;
}

/** The kept runs of the loaded model with checkpoints, newest first (the engine's `checkpoints`). */
export function useCheckpoints(): RunCheckpoints[] {
  const model = useModel((s) => s.loaded?.label);
  const checkpoints = useQuery({
    queryKey: ['checkpoints', model],
    queryFn: () => getEngine().checkpoints(),
    enabled: model !== undefined,
  });
  return checkpoints.data ?? [];
}

/**
 * A kept run's checkpoint, as a radio with the run and its step picked from lists (Compare and Export offer the
 * same): any kept run of the loaded model, newest first, at any of its kept steps. Nothing when none kept one.
 * `chosen` is the picked checkpoint, or null while another choice is on.
 */
export function CheckpointChoice(props: {
  chosen: KeptCheckpoint | null;
  onChoose: (checkpoint: KeptCheckpoint) => void;
  /** Only runs of this method (a reward model's, for policy optimization's reward). */
  method?: Method;
  label?: string;
}) {
  const { chosen, onChoose, method, label = 'A kept checkpoint' } = props;
  const runs = useCheckpoints().filter((r) => method === undefined || r.method === method);
  if (runs.length === 0) return null;
  const run = runs.find((r) => r.run === chosen?.run) ?? runs[0];
  const latest = (r: RunCheckpoints): KeptCheckpoint => ({ run: r.run, step: r.steps[r.steps.length - 1] });
  return (
    <label className="flex flex-wrap items-center gap-2">
      <input type="radio" aria-label={label} checked={chosen !== null} onChange={() => onChoose(latest(run))} />
      The
      <select
        className={input}
        aria-label="Which run"
        value={run.run}
        onChange={(e) => onChoose(latest(runs.find((r) => r.run === e.target.value) ?? run))}
      >
        {runs.map((r) => (
          <option key={r.run} value={r.run}>
            {runLabel(r)}
          </option>
        ))}
      </select>
      at step
      <select
        className={input}
        aria-label="Checkpoint step"
        value={chosen?.run === run.run ? chosen.step : latest(run).step}
        onChange={(e) => onChoose({ run: run.run, step: Number(e.target.value) })}
      >
        {run.steps.map((step) => (
          <option key={step} value={step}>
            {step}
          </option>
        ))}
      </select>
    </label>
  );
}
