/** CPU twins of the RMSNorm kernels (float64). Layouts as in rmsnorm.ts. */

export function rmsnormForwardCpu(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[r * dim + j] ** 2;
    rstd[r] = 1 / Math.sqrt(s / dim + eps);
    for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + j] * rstd[r] * w[j];
  }
  return { y, rstd };
}

export function rmsnormBackwardCpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  dim: number,
) {
  const dx = new Float64Array(rows * dim);
  const dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    let meanGX = 0;
    for (let j = 0; j < dim; j++) meanGX += dy[r * dim + j] * w[j] * x[r * dim + j] * rstd[r];
    meanGX /= dim;
    for (let j = 0; j < dim; j++) {
      const xhat = x[r * dim + j] * rstd[r];
      dx[r * dim + j] = rstd[r] * (dy[r * dim + j] * w[j] - xhat * meanGX);
      dw[j] += dy[r * dim + j] * xhat;
    }
  }
  return { dx, dw };
}
