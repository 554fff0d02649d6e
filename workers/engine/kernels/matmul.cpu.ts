import { type MatmulShape, type MatmulVariant, resolveMatmulShape } from './matmul';

/** A low-rank term's operands as arrays (see `LowRank` in matmul.ts). */
export interface LowRankCpu {
  l: ArrayLike<number>;
  r: ArrayLike<number>;
  rank: number;
  offsetL?: number;
  offsetR?: number;
  scale: number;
  /** Multipliers of the term, element m·N + n of C (a dropout mask, `dropoutMaskCpu`). */
  mask?: ArrayLike<number>;
}

/**
 * CPU twin of the GPU matmul, in float64: C[b] = alpha * (op(A[b]) · op(B[b]) + scale * L·op(R)) + beta * C[b],
 * the low-rank term only where given. Same storage conventions as matmul.ts; `c` is updated in place.
 */
export function matmulCpu(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: Float64Array | Float32Array,
  shape: MatmulShape,
  variant: Pick<MatmulVariant, 'transA' | 'transB'>,
  lowRank?: LowRankCpu,
): void {
  const s = resolveMatmulShape(shape, variant);
  for (let batch = 0; batch < s.batch; batch++) {
    const aBase = s.offsetA + batch * s.strideA;
    const bBase = s.offsetB + Math.floor(batch / s.batchDivB) * s.strideB;
    const cBase = s.offsetC + batch * s.strideC;
    for (let m = 0; m < s.M; m++) {
      for (let n = 0; n < s.N; n++) {
        let sum = 0;
        for (let k = 0; k < s.K; k++) {
          const av = a[aBase + (variant.transA ? k * s.lda + m : m * s.lda + k)];
          const bv = b[bBase + (variant.transB ? n * s.ldb + k : k * s.ldb + n)];
          sum += av * bv;
        }
        if (lowRank) {
          const { l, r, rank, offsetL = 0, offsetR = 0, scale } = lowRank;
          let low = 0;
          for (let t = 0; t < rank; t++) {
            low += l[offsetL + m * rank + t] * r[offsetR + (variant.transB ? n * rank + t : t * s.N + n)];
          }
          sum += scale * low * (lowRank.mask ? lowRank.mask[m * s.N + n] : 1);
        }
        const at = cBase + m * s.ldc + n;
        c[at] = s.alpha * sum + (s.beta !== 0 ? s.beta * c[at] : 0);
      }
    }
  }
}
