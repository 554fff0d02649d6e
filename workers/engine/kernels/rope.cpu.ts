import type { RopeDirection, RopeShape, Rotation } from './rope';

/** CPU twin of the rope/layout kernel (float64). */
export function ropeCpu(
  direction: RopeDirection,
  rotation: Rotation,
  x: ArrayLike<number>,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  s: RopeShape,
): Float64Array {
  const { batch, seq, heads, headDim } = s;
  const half = headDim / 2;
  const rows = (b: number, h: number, t: number, i: number) => ((b * seq + t) * heads + h) * headDim + i;
  const headsAt = (b: number, h: number, t: number, i: number) => ((b * heads + h) * seq + t) * headDim + i;
  const [inAt, outAt] = direction === 'rowsToHeads' ? [rows, headsAt] : [headsAt, rows];
  const sign = rotation === 'forward' ? 1 : rotation === 'inverse' ? -1 : 0;
  const y = new Float64Array(batch * seq * heads * headDim);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < seq; t++)
        for (let i = 0; i < headDim; i++) {
          const v = x[inAt(b, h, t, i)];
          if (sign === 0) {
            y[outAt(b, h, t, i)] = v;
            continue;
          }
          const k = i % half;
          const c = cos[t * half + k];
          const sn = sign * sin[t * half + k];
          y[outAt(b, h, t, i)] =
            i < half ? v * c - x[inAt(b, h, t, i + half)] * sn : v * c + x[inAt(b, h, t, i - half)] * sn;
        }
  return y;
}
