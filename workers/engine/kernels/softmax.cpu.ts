/** CPU twins of the causal softmax kernels (float64); layouts as in softmax.ts. */

export function causalSoftmaxCpu(scores: ArrayLike<number>, rows: number, seq: number): Float64Array {
  const out = new Float64Array(rows * seq);
  for (let r = 0; r < rows; r++) {
    const visible = (r % seq) + 1;
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < visible; j++) m = Math.max(m, scores[r * seq + j]);
    let total = 0;
    for (let j = 0; j < visible; j++) total += Math.exp(scores[r * seq + j] - m);
    for (let j = 0; j < visible; j++) out[r * seq + j] = Math.exp(scores[r * seq + j] - m) / total;
  }
  return out;
}

export function causalSoftmaxBackwardCpu(
  probs: ArrayLike<number>,
  dProbs: ArrayLike<number>,
  rows: number,
  seq: number,
): Float64Array {
  const out = new Float64Array(rows * seq);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let j = 0; j < seq; j++) dot += probs[r * seq + j] * dProbs[r * seq + j];
    for (let j = 0; j < seq; j++) out[r * seq + j] = probs[r * seq + j] * (dProbs[r * seq + j] - dot);
  }
  return out;
}
