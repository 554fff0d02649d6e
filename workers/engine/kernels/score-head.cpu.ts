/**
 * CPU twins of the score-head kernels (float64): a scalar read from one row of the final hidden states per
 * sequence. x: [N, d] hidden rows, w: [d] head, rows: [B] which row of x scores each sequence.
 */
export function scoreHeadCpu(x: ArrayLike<number>, w: ArrayLike<number>, rows: ArrayLike<number>): Float64Array {
  const d = w.length;
  return Float64Array.from({ length: rows.length }, (_, b) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[rows[b] * d + j] * w[j];
    return s;
  });
}

/** d(score)/d(x) and d(score)/d(w) for upstream gradients g: [B]. dx is zero off the scored rows. */
export function scoreHeadBackwardCpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: ArrayLike<number>,
  g: ArrayLike<number>,
): { dx: Float64Array; dw: Float64Array } {
  const d = w.length;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(d);
  for (let b = 0; b < rows.length; b++) {
    for (let j = 0; j < d; j++) {
      dx[rows[b] * d + j] += g[b] * w[j];
      dw[j] += g[b] * x[rows[b] * d + j];
    }
  }
  return { dx, dw };
}
