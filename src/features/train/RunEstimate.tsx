import { useMutation } from '@tanstack/react-query';
import type { ModelConfig } from '../../../core/model-config';
import { estimateTrainingMemory } from '../../../core/model-memory';
import { defaultsExplained, type TrainSettings } from '../../../core/training/settings';
import type { RunTiming } from '../../../workers/engine/api';
import { button, ErrorMessage } from '../../components/ui';
import { formatBytes, formatSeconds, plural } from '../../lib/format';

/** Rows a step holds per item: pairs are two sequences, policy optimization's prompts a group of completions. */
function rowsPerItem(s: TrainSettings): number {
  if (s.method === 'dpo' || s.method === 'rm') return 2;
  return s.method === 'grpo' ? s.groupSize : 1;
}

/**
 * What timing the run needs: a key that changes with anything the run depends on, the measurement, and whether it
 * can run now (not while a run trains; an earlier result stays shown).
 */
interface Timing {
  key: string;
  measure: () => Promise<RunTiming>;
  disabled: boolean;
}

/** How long the run would take, measured on request: it takes two steps' time, so it is not done unasked. */
function TimeEstimate({ timing }: { timing: Timing }) {
  const measured = useMutation({ mutationFn: (_key: string) => timing.measure() });
  const current = measured.variables === timing.key;
  const t = current ? measured.data : undefined;
  return (
    <div className="flex flex-wrap items-center gap-3" aria-live="polite">
      <button
        type="button"
        className={`${button} border border-indigo-600 text-indigo-700 dark:text-indigo-300`}
        disabled={measured.isPending || timing.disabled}
        onClick={() => measured.mutate(timing.key)}
      >
        {measured.isPending ? 'Timing two steps…' : 'Estimate the time'}
      </button>
      {t && (
        <p data-testid="time-estimate">
          About <strong>{formatSeconds(t.totalSeconds)}</strong>: {plural(t.totalSteps, 'step')} of{' '}
          {formatSeconds(t.secondsPerStep)} each, measured on this GPU with these settings and data
          {t.validationSeconds > 0 && `, with about ${formatSeconds(t.validationSeconds)} of validation`}
          {t.preparationSeconds >= 1 && ` and ${formatSeconds(t.preparationSeconds)} of preparing the data`}.
        </p>
      )}
      {current && measured.error && <ErrorMessage error={measured.error} />}
      {!current && !measured.isPending && (
        <p>Times two steps of this run on this GPU (the second counts), then works out the whole run.</p>
      )}
    </div>
  );
}

/**
 * What the settings will cost the GPU, at most; how long the run will take, once timed (`timing` is null while the
 * run could not start); and why the defaults are what they are.
 */
export function RunEstimate({
  config,
  halfMatrices,
  settings: s,
  parameters,
  timing,
}: {
  config: ModelConfig;
  /** The loaded model's matrices are held at fp16. */
  halfMatrices: boolean;
  settings: TrainSettings;
  parameters: number;
  timing: Timing | null;
}) {
  const estimate = (recompute: boolean) =>
    estimateTrainingMemory(config, {
      batch: s.batchSize * rowsPerItem(s),
      seq: s.seqLen,
      rank: s.loraR,
      targets: s.targets,
      full: s.full,
      // As the engine holds them: LoRA runs read the loaded weights, a full run trains an fp32 copy beside them.
      halfMatrices,
      keepsBase: true,
      recompute,
      // Policy optimization's KL reference is a second, forward-only step; its sampler keeps caches of every row.
      reference: s.method === 'grpo' && s.klBeta > 0,
      sampler: s.method === 'grpo',
    });
  const memory = estimate(s.recompute);
  const valid = Number.isFinite(memory.total) && memory.total > 0;
  // Worth saying when activations are most of the memory and recomputing them would save much.
  const recomputed = s.recompute ? null : estimate(true);
  const suggestRecompute = valid && recomputed !== null && recomputed.total < 0.6 * memory.total;
  return (
    <div className="mt-3 space-y-2 text-sm text-slate-600 dark:text-slate-300" data-testid="run-estimate">
      {valid && (
        <p>
          Up to about <strong>{formatBytes(memory.total)}</strong> of GPU memory: weights {formatBytes(memory.weights)}
          {s.full && ' (the loaded model, kept for comparing, and the fp32 copy the run trains)'}, activations{' '}
          {formatBytes(memory.activations)} (for sequences of {s.seqLen} tokens; shorter data needs less),{' '}
          {s.full ? 'every weight’s gradients and optimizer state' : 'the adapter and its optimizer state'}{' '}
          {formatBytes(memory.adapter)}.
          {suggestRecompute &&
            ` Recomputing activations would need about ${formatBytes(recomputed.total)}, for about a third more time.`}
        </p>
      )}
      {timing && <TimeEstimate timing={timing} />}
      <details>
        <summary className="cursor-pointer">Why these defaults</summary>
        <ul className="mt-1 list-disc pl-5">
          {defaultsExplained(s.method, parameters, s.full).map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      </details>
    </div>
  );
}
