import { type MatmulShape, type MatmulVariant, resolveMatmulShape } from './matmul';

/**
 * CPU twin of the GPU matmul, in float64: C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b].
 * Same storage conventions as matmul.ts; `c` is updated in place.
 */
export function matmulCpu(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: Float64Array | Float32Array,
  shape: MatmulShape,
  variant: Pick<MatmulVariant, 'transA' | 'transB'>,
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
        const at = cBase + m * s.ldc + n;
        c[at] = s.alpha * sum + (s.beta !== 0 ? s.beta * c[at] : 0);
      }
    }
  }
}
