import type { ModelConfig } from '../../../core/model-config';
import { estimateTrainingMemory } from '../../../core/model-memory';
import { defaultsExplained, type TrainSettings } from '../../../core/training/settings';
import { formatBytes } from '../../lib/format';

/** Rows a step holds per item: pairs are two sequences, policy optimization's prompts a group of completions. */
function rowsPerItem(s: TrainSettings): number {
  if (s.method === 'dpo' || s.method === 'rm') return 2;
  return s.method === 'grpo' ? s.groupSize : 1;
}

/** What the settings will cost the GPU, at most, and why the defaults are what they are. */
export function RunEstimate({
  config,
  settings: s,
  parameters,
}: {
  config: ModelConfig;
  settings: TrainSettings;
  parameters: number;
}) {
  const memory = estimateTrainingMemory(config, {
    batch: s.batchSize * rowsPerItem(s),
    seq: s.seqLen,
    rank: s.loraR,
    targets: s.targets,
    full: s.full,
    halfMatrices: !s.full,
    // Policy optimization's KL reference is a second, forward-only step.
    steps: s.method === 'grpo' && s.klBeta > 0 ? 2 : 1,
  });
  const valid = Number.isFinite(memory.total) && memory.total > 0;
  return (
    <div className="mt-3 space-y-2 text-sm text-slate-600 dark:text-slate-300" data-testid="run-estimate">
      {valid && (
        <p>
          Up to about <strong>{formatBytes(memory.total)}</strong> of GPU memory: weights {formatBytes(memory.weights)},
          activations {formatBytes(memory.activations)} (for sequences of {s.seqLen} tokens; shorter data needs less),{' '}
          {s.full ? 'every weight’s gradients and optimizer state' : 'the adapter and its optimizer state'}{' '}
          {formatBytes(memory.adapter)}. The time left shows once the first steps have run.
        </p>
      )}
      <details>
        <summary className="cursor-pointer">Why these defaults</summary>
        <ul className="mt-1 list-disc pl-5">
          {defaultsExplained(s.method, parameters).map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      </details>
    </div>
  );
}
