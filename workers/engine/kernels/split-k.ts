import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import {
  checkLowRank,
  checkOperandMask,
  type LowRank,
  type MatmulExtras,
  MatmulKernel,
  type MatmulShape,
  type MatmulVariant,
  type ResolvedShape,
  resolveMatmulShape,
} from './matmul';
import { extraBindings, extraBuffers, LOW_RANK_FIELDS, lowRankUniforms } from './matmul-wgsl';
import { uniformStruct } from './wgsl';

/**
 * Split-K: C = alpha · (Σ_k op(A)[:, slice k]·op(B)[slice k, :] [+ a low-rank term]) + beta · C, the slices a batch of
 * products into partial sums [splits, M, N], then a reduce pass. For few output tiles over a long K (a LoRA x Aᵀ at
 * 128 tokens is 128 x 16 over K = 576..1536: two workgroups' work). Batch 1, K divisible by `splits`.
 */
const REDUCE_PARAMS = uniformStruct({
  M: 'u32',
  N: 'u32',
  splits: 'u32',
  ldc: 'u32',
  offsetC: 'u32',
  alpha: 'f32',
  beta: 'f32',
  ...LOW_RANK_FIELDS,
});

function reduceShader(v: Pick<MatmulVariant, 'transB' | 'lowRank' | 'maskedLowRank' | 'maskedOperand'>): string {
  const rIndex = v.transB ? 'n * p.rank + t' : 't * p.N + n';
  return /* wgsl */ `
${REDUCE_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
${extraBindings(v, 2)}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.M * p.N) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.splits; k++) { s += partial[k * p.M * p.N + i]; }
  let m = i / p.N;
  let n = i % p.N;
  ${
    v.lowRank
      ? `var low = 0.0;
  for (var t = 0u; t < p.rank; t++) { low += L[p.offsetL + m * p.rank + t] * R[p.offsetR + ${rIndex}]; }
  s += p.scaleL * low${v.maskedLowRank ? ' * maskFactor(i)' : ''};`
      : ''
  }
  let at = p.offsetC + m * p.ldc + n;
  var value = p.alpha * s;
  if (p.beta != 0.0) { value += p.beta * C[at]; }
  C[at] = value;
}
`;
}

export function canSplitK(shape: MatmulShape, splits: number): boolean {
  return (shape.batch ?? 1) === 1 && shape.K % splits === 0 && shape.K / splits >= 8;
}

/** The partial sums [splits, M, N] into C, and a low-rank term where the variant has one. */
export interface SplitKReduceIo {
  scratch: GPUBuffer;
  c: GPUBuffer;
  /** C's rows at offsetC, ldc apart. */
  shape: Pick<ResolvedShape, 'M' | 'N' | 'ldc' | 'offsetC' | 'alpha' | 'beta'>;
  splits: number;
  lowRank?: LowRank;
}

/**
 * C = alpha · (Σ of `splits` partial [M, N] slabs [+ a low-rank term]) + beta · C; also the last pass of a sum of
 * products (matmul-set.ts).
 */
export class SplitKReduce {
  private readonly kernel: Kernel;

  constructor(
    device: GPUDevice,
    readonly variant: Pick<MatmulVariant, 'transB' | 'lowRank' | 'maskedLowRank'>,
  ) {
    const term = variant.lowRank ? (variant.maskedLowRank ? '_lrm' : '_lr') : '';
    this.kernel = new Kernel(
      device,
      reduceShader({ ...variant, maskedOperand: undefined }),
      `matmul_split_k_reduce${term}`,
    );
  }

  op({ scratch, c, shape, splits, lowRank }: SplitKReduceIo): Op {
    const { M, N, ldc, offsetC, alpha, beta } = shape;
    return this.kernel.op(
      [scratch, c, ...extraBuffers(lowRank)],
      REDUCE_PARAMS.pack({ M, N, splits, ldc, offsetC, alpha, beta, ...lowRankUniforms(lowRank) }),
      grid1d(M * N, 64),
    );
  }
}

export class SplitKMatmul {
  private readonly partials: MatmulKernel;
  private readonly reduce: SplitKReduce;

  constructor(
    device: GPUDevice,
    readonly variant: MatmulVariant,
    readonly splits: number,
  ) {
    // The slices read the operands (through an operand mask); the reduce adds the low-rank term.
    this.partials = new MatmulKernel(device, { ...variant, lowRank: false, maskedLowRank: false });
    this.reduce = new SplitKReduce(device, variant);
  }

  /** Bytes of scratch the product needs. */
  scratchBytes(shape: MatmulShape): number {
    return this.splits * shape.M * shape.N * 4;
  }

  /** C ← the product, its partial sums in `scratch` (`scratchBytes`); extras as MatmulKernel.op's. */
  ops(
    a: GPUBuffer,
    b: GPUBuffer,
    c: GPUBuffer,
    shape: MatmulShape,
    { scratch, lowRank, operandMask }: MatmulExtras & { scratch: GPUBuffer },
  ): Op[] {
    if (!canSplitK(shape, this.splits)) throw new Error(`split-K ${this.splits} cannot run ${JSON.stringify(shape)}`);
    const s = resolveMatmulShape(shape, this.variant);
    checkLowRank(`split-K ${this.splits}`, s, lowRank, this.variant);
    checkOperandMask(`split-K ${this.splits}`, operandMask, this.variant);
    const slice = s.K / this.splits;
    const { transA, transB } = this.variant;
    // Slice k's operands sit where they sit in the whole product, so a mask's index (from the operand's offset) is
    // the whole product's.
    const partials = this.partials.op(
      a,
      b,
      scratch,
      {
        M: s.M,
        N: s.N,
        K: slice,
        batch: this.splits,
        lda: s.lda,
        ldb: s.ldb,
        // Slice k of op(A) starts slice * k columns in (rows, when A is stored transposed); likewise op(B).
        strideA: transA ? slice * s.lda : slice,
        strideB: transB ? slice : slice * s.ldb,
        strideC: s.M * s.N,
        offsetA: s.offsetA,
        offsetB: s.offsetB,
      },
      { operandMask },
    );
    return [partials, this.reduce.op({ scratch, c, shape: s, splits: this.splits, lowRank })];
  }
}
