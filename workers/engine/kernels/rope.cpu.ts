import type { RopeShape, Rotation } from './rope';

/** CPU twin of the rope kernel (float64), rows layout [batch * seq, heads * headDim]. */
export function ropeCpu(
  rotation: Rotation,
  x: ArrayLike<number>,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  s: RopeShape,
): Float64Array {
  const { batch, seq, heads, headDim } = s;
  const half = headDim / 2;
  const sign = rotation === 'forward' ? 1 : -1;
  const y = new Float64Array(batch * seq * heads * headDim);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < seq; t++)
      for (let h = 0; h < heads; h++) {
        const row = ((b * seq + t) * heads + h) * headDim;
        for (let i = 0; i < headDim; i++) {
          const k = i % half;
          const c = cos[t * half + k];
          const sn = sign * sin[t * half + k];
          y[row + i] = i < half ? x[row + i] * c - x[row + i + half] * sn : x[row + i] * c + x[row + i - half] * sn;
        }
      }
  return y;
}
