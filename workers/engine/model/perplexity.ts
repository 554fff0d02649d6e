import type { TokenizedExample } from '../../../core/dataset/render';
import { submitOps } from '../gpu/ops';
import type { EngineKernels } from './kernels';
import type { GpuLora } from './lora';
import { TransformerStep } from './transformer';
import type { GpuWeights } from './weights';

/** Tokens a perplexity forward reads at once; a longer sequence goes in windows of it. */
const WINDOW = 512;

/**
 * Each sequence's perplexity under the model (with its adapter, dropout off): exp(Σ CE_t / n) over its n labelled
 * tokens (labels -100 are not counted, so a prompt's tokens are context only); null where it has none. A window of
 * up to WINDOW tokens per forward, position t predicting label t + 1 (a window's last position predicts the next
 * window's first label), so a long text is read in pieces that do not see the one before.
 */
export async function perplexities(
  engine: { device: GPUDevice; kernels: EngineKernels },
  model: { weights: GpuWeights; lora: GpuLora | null },
  sequences: readonly TokenizedExample[],
): Promise<(number | null)[]> {
  const { device, kernels } = engine;
  const longest = Math.max(1, ...sequences.map((s) => s.ids.length));
  const seq = Math.min(WINDOW, model.weights.config.maxPositionEmbeddings, longest);
  const step = new TransformerStep(
    device,
    kernels,
    model.weights,
    model.lora,
    { batch: 1, seq },
    { full: false, forwardOnly: true },
  );
  try {
    step.setDropoutSeed(null);
    const result: (number | null)[] = [];
    for (const { ids, labels } of sequences) {
      let sum = 0;
      let count = 0;
      for (let start = 0; start + 1 < ids.length; start += seq) {
        const tokens = Array.from({ length: seq }, (_, t) => ids[start + t] ?? 0);
        // targets[t] = labels[start + t + 1] where position start + t is a real token, else ignored.
        const targets = Array.from({ length: seq }, (_, t) =>
          start + t + 1 < ids.length ? labels[start + t + 1] : -100,
        );
        if (targets.every((id) => id < 0)) continue;
        step.setBatchTargets([tokens], [targets], 1);
        submitOps(device, step.forwardOps);
        const losses = await step.readTokenLosses();
        targets.forEach((id, t) => {
          if (id < 0) return;
          sum += losses[t];
          count++;
        });
      }
      result.push(count === 0 ? null : Math.exp(sum / count));
    }
    return result;
  } finally {
    step.destroy();
  }
}
