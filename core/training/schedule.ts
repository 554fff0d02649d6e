import type { Schedule } from './settings';

/** The fewest warm-up steps of a run that continues an adapter made before. */
export const CONTINUED_WARMUP = 3;

/**
 * Warm-up steps for a run of `total` steps: `warmup` below 1 is a fraction of the run. A `continued` adapter's
 * optimizer starts with no moments, so Adam's first updates are lr · sign(g) on weights already trained: it warms up
 * over at least CONTINUED_WARMUP steps or a tenth of the run.
 */
export function warmupSteps(warmup: number, total: number, continued = false): number {
  const asked = warmup < 1 ? Math.round(warmup * total) : Math.min(total, Math.floor(warmup));
  if (!continued) return asked;
  return Math.min(total, Math.max(asked, CONTINUED_WARMUP, Math.round(0.1 * total)));
}

/**
 * The learning rate of optimizer step `step` (0-based) of `total`, shaped like transformers' schedulers: a linear
 * climb over the warm-up (starting above 0, so no step is wasted), then constant, linear decay to 0, or cosine
 * decay to 0.
 */
export function learningRate(peak: number, schedule: Schedule, warmup: number, step: number, total: number): number {
  if (step < warmup) return (peak * (step + 1)) / (warmup + 1);
  if (schedule === 'constant') return peak;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (schedule === 'linear') return peak * Math.max(0, 1 - progress);
  return peak * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
