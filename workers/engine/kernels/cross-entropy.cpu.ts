/**
 * CPU twin of the chunked cross-entropy (float64), on the whole [tokens, vocab] logits at once.
 * Returns each token's weighted loss, the log-sum-exp, and d(loss)/d(logits).
 */
export function crossEntropyCpu(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  weights: ArrayLike<number>,
  vocab: number,
) {
  const tokens = targets.length;
  const loss = new Float64Array(tokens);
  const lse = new Float64Array(tokens);
  const dLogits = new Float64Array(tokens * vocab);
  for (let t = 0; t < tokens; t++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < vocab; v++) m = Math.max(m, logits[t * vocab + v]);
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(logits[t * vocab + v] - m);
    lse[t] = m + Math.log(s);
    const target = targets[t];
    const counted = weights[t] !== 0 && target >= 0 && target < vocab;
    loss[t] = counted ? (lse[t] - logits[t * vocab + target]) * weights[t] : 0;
    for (let v = 0; v < vocab; v++) {
      const p = Math.exp(logits[t * vocab + v] - lse[t]);
      dLogits[t * vocab + v] = (p - (v === target ? 1 : 0)) * weights[t];
    }
  }
  return { loss, lse, dLogits };
}
