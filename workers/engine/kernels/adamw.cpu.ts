import type { AdamWSettings } from './adamw';

/** CPU twin of one clipped AdamW step (float64), updating param, m, v in place; returns the global norm. */
export function adamwCpu(
  params: Float64Array[],
  grads: ArrayLike<number>[],
  ms: Float64Array[],
  vs: Float64Array[],
  s: AdamWSettings,
  step: number,
  maxNorm: number,
): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  const norm = Math.sqrt(sum);
  const scale = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  const bias1 = 1 - s.beta1 ** step;
  const bias2 = 1 - s.beta2 ** step;
  params.forEach((p, k) => {
    for (let i = 0; i < p.length; i++) {
      const g = grads[k][i] * scale;
      ms[k][i] = s.beta1 * ms[k][i] + (1 - s.beta1) * g;
      vs[k][i] = s.beta2 * vs[k][i] + (1 - s.beta2) * g * g;
      p[i] = p[i] * (1 - s.lr * s.weightDecay) - (s.lr * (ms[k][i] / bias1)) / (Math.sqrt(vs[k][i] / bias2) + s.eps);
    }
  });
  return norm;
}
