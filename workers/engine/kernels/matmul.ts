import { Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { registersShader, usesVectorK } from './matmul-registers';
import { tiledShader } from './matmul-tiled';
import { extraBuffers, matmulUniforms } from './matmul-wgsl';
import { QUANT_FORMATS, type QuantFormat } from './quant';

/**
 * C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], op(A) [M, K] (stored [K, M] with transA), op(B) [K, N] (stored
 * [N, K] with transB); batch b along the dispatch's z, B's matrix floor(b / batchDivB) (grouped-query attention).
 * A linear layer y = x Wᵀ, W [out, in], without copies:
 *   forward   y  = x  · Wᵀ     A = x [T, in],   B = W  transB
 *   input     dx = dy · W      A = dy [T, out], B = W
 *   weight    dW = dyᵀ · x     A = dy  transA,  B = x [T, in]
 * Two families, per adapter: register blocks (matmul-registers.ts, CPU adapters, whose caches stage the data) and
 * workgroup-memory tiles (matmul-tiled.ts, GPUs, which want coalesced loads reused across the workgroup). A variant
 * may add a low-rank term (`LowRank`: LoRA's second product in the same pass) or read an operand through a dropout
 * mask (`OperandMask`). Split-K: split-k.ts; sets of products: matmul-set.ts. CPU twin: matmul.cpu.ts.
 */

/** How a weight operand is stored: fp32, fp16 pairs, or quantized (quant.ts). */
export type MatrixFormat = 'f32' | 'f16' | QuantFormat;

/** The quantized format of `format`, or undefined for fp32 and fp16. */
export const quantOf = (format: MatrixFormat): QuantFormat | undefined =>
  (QUANT_FORMATS as readonly string[]).includes(format) ? (format as QuantFormat) : undefined;

/** The variant fields that read B stored in `format`. */
export const bFormat = (format: MatrixFormat): Pick<MatmulVariant, 'halfB' | 'quantB'> => ({
  halfB: format === 'f16',
  quantB: quantOf(format),
});

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** The tiled family (matmul-tiled.ts); the registers family otherwise. */
  tiled?: boolean;
  /** B as fp16 pairs in u32 words, widened with unpack2x16float (core WGSL); fp32 sums. */
  halfB?: boolean;
  /**
   * B a frozen weight W stored quantized (quant.ts), dequantized as each element is read (with `vectorK`, a word of
   * codes at a time): W's rows (dense, batch 1; 4-bit whole, q8 from any row), x·Wᵀ or dy·W. Not in sets.
   */
  quantB?: QuantFormat;
  /** Registers family, x·Wᵀ: A and B rows read along K as vectors where the shape allows (`vectorKFits`). */
  vectorK?: boolean;
  /** Rows of C per invocation. */
  tileM: 4 | 8;
  /** Columns of C per invocation (a multiple of 4: they are held as vec4). */
  tileN: 4 | 8;
  /** Workgroup size: x runs along N, y along M. */
  workgroupX: number;
  workgroupY: number;
  /**
   * Tiled family: K in this many slices of the workgroup (2 or 4; workgroup size z), summed in workgroup memory;
   * for products with few output tiles, without split-K's reduce pass.
   */
  kSlices?: number;
  /** Binds L and R of a low-rank term (`LowRank`); only for transA false and batch 1. */
  lowRank?: boolean;
  /** The low-rank term carries a dropout mask (`LowRank.mask`), so the variant binds the dropout state too. */
  maskedLowRank?: boolean;
  /** This operand (fp32) is read through a dropout mask (`OperandMask`); not with a low-rank term. */
  maskedOperand?: 'a' | 'b';
}

/**
 * operand[offset + i] read as dropout(operand)[i], the mask drawn as kernels/dropout.ts draws it: x Aᵀ reads
 * dropout(x) as A, and dA += d(x Aᵀ)ᵀ dropout(x) as B, without dropout(x) written out.
 */
export interface OperandMask {
  operand: 'a' | 'b';
  state: GPUBuffer;
  module: number;
  p: number;
}

/**
 * C = alpha · (op(A)·op(B) + scale · L·op(R)) + beta · C, L [M, rank], op(R) [rank, N] stored as B is (fp32, at
 * element offsets): LoRA's forward is L = x Aᵀ, R = B; its input gradient L = d(x Aᵀ), R = A.
 */
export interface LowRank {
  l: GPUBuffer;
  r: GPUBuffer;
  rank: number;
  offsetL?: number;
  offsetR?: number;
  scale: number;
  /** Term element (m, n) times dropout mask value m·N + n: the input gradient's dropout'(d(x Aᵀ) A); C dense. */
  mask?: { state: GPUBuffer; module: number; p: number };
}

export const DEFAULT_MATMUL_TILE = { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 } as const;

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  batch?: number;
  /** Leading dimensions; default to the dense layout implied by the transposes. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Elements between consecutive batch matrices; default dense. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Consecutive batch entries that share one B matrix (grouped-query attention); default 1. */
  batchDivB?: number;
  /** Element offsets of the first matrix inside each buffer. */
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  alpha?: number;
  /** 0 overwrites C; 1 accumulates into it (gradient accumulation). */
  beta?: number;
}

/** The shape with every default filled in. */
export function resolveMatmulShape(shape: MatmulShape, variant: Pick<MatmulVariant, 'transA' | 'transB'>) {
  const { M, N, K } = shape;
  const lda = shape.lda ?? (variant.transA ? M : K);
  const ldb = shape.ldb ?? (variant.transB ? K : N);
  const ldc = shape.ldc ?? N;
  return {
    M,
    N,
    K,
    batch: shape.batch ?? 1,
    lda,
    ldb,
    ldc,
    strideA: shape.strideA ?? M * K,
    strideB: shape.strideB ?? K * N,
    strideC: shape.strideC ?? M * N,
    batchDivB: shape.batchDivB ?? 1,
    offsetA: shape.offsetA ?? 0,
    offsetB: shape.offsetB ?? 0,
    offsetC: shape.offsetC ?? 0,
    alpha: shape.alpha ?? 1,
    beta: shape.beta ?? 0,
  };
}

/** resolveMatmulShape's result. */
export type ResolvedShape = ReturnType<typeof resolveMatmulShape>;

/**
 * The buffers a set of products (matmul-set.ts) binds: `as` A operands, `bs` B operands and `cs` outputs, each
 * product's form naming its three by index, for `products` products (each with a form index in its uniforms).
 */
export interface SetLayout {
  as: number;
  bs: number;
  cs: number;
  forms: { a: number; b: number; c: number }[];
  products: number;
}

/**
 * Whether every row of A and B starts on a whole vector: 4 floats of A, 4 floats or 8 halves of B (a quantized B's
 * rows are whole words of codes, its K whole groups).
 */
export function vectorKFits(shape: MatmulShape, v: MatmulVariant): boolean {
  const s = resolveMatmulShape(shape, v);
  const perB = v.halfB ? 8 : 4;
  return (
    (v.quantB !== undefined || [s.K, s.ldb, s.offsetB, s.strideB].every((n) => n % perB === 0)) &&
    [s.lda, s.offsetA, s.strideA].every((n) => n % 4 === 0)
  );
}

function matmulShader(v: MatmulVariant): string {
  return v.tiled ? tiledShader(v) : registersShader(v);
}

/** The tiled family's shader for a set of products in one dispatch (variant.tiled, no operand mask). */
export function matmulSetShader(v: MatmulVariant, set: SetLayout): string {
  if (!v.tiled || v.maskedOperand || v.quantB) {
    throw new Error('a matmul set runs tiled products without operand masks or quantized operands');
  }
  return tiledShader(v, set);
}

/** What rides on a product: LoRA's low-rank term, or one operand read through a dropout mask. */
export interface MatmulExtras {
  lowRank?: LowRank;
  operandMask?: OperandMask;
}

/** A compiled matmul variant; `op` records one multiplication for a plan. */
export class MatmulKernel {
  private readonly kernel: Kernel;
  /** With `vectorK`, the plain register kernel for shapes that do not split into whole vectors. */
  private readonly unaligned: Kernel | null;

  constructor(
    device: GPUDevice,
    readonly variant: MatmulVariant,
  ) {
    this.kernel = new Kernel(device, matmulShader(variant), matmulLabel(variant));
    const plain = { ...variant, vectorK: false };
    this.unaligned = usesVectorK(variant) ? new Kernel(device, matmulShader(plain), matmulLabel(plain)) : null;
  }

  /** C ← alpha (op(A)·op(B) [+ the low-rank term]) + beta C; `extras` exactly what the variant was compiled for. */
  op(a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape, { lowRank, operandMask }: MatmulExtras = {}): Op {
    const s = resolveMatmulShape(shape, this.variant);
    const v = this.variant;
    checkLowRank(`matmul ${matmulLabel(v)}`, s, lowRank, v);
    checkOperandMask(`matmul ${matmulLabel(v)}`, operandMask, v);
    if (v.quantB) checkQuantB(`matmul ${matmulLabel(v)}`, s, v);
    const kernel = this.unaligned && !vectorKFits(shape, v) ? this.unaligned : this.kernel;
    return kernel.op([a, b, c, ...extraBuffers(lowRank, operandMask)], matmulUniforms(s, lowRank, operandMask), [
      Math.ceil(s.N / (v.tileN * v.workgroupX)),
      Math.ceil(s.M / (v.tileM * v.workgroupY)),
      s.batch,
    ]);
  }
}

/**
 * A quantized B is a dense matrix whose rows are W's (leading dimension its row length, no batch): a 4-bit W whole
 * (offset 0), a q8 one from any whole row (a slice of the LM head's vocabulary).
 */
function checkQuantB(kernel: string, s: ResolvedShape, v: MatmulVariant): void {
  const cols = v.transB ? s.K : s.N;
  const rowOffset = v.quantB === 'q8' && s.offsetB % cols === 0;
  if ((s.offsetB !== 0 && !rowOffset) || s.ldb !== cols || s.batch !== 1) {
    const from = v.quantB === 'q8' ? 'from a whole row' : 'offset 0';
    throw new Error(`${kernel}: a quantized B is a whole matrix (${from}, ldb ${cols}, batch 1)`);
  }
}

/** What a low-rank term is, or what a variant was compiled for: none, plain, or with a dropout mask. */
function termKind(present: boolean, masked: boolean): string {
  return present ? (masked ? 'a masked low-rank term' : 'a low-rank term') : 'no low-rank term';
}

/**
 * A low-rank term must be what the kernel was compiled for (none, plain or masked), needs C's rows in order
 * (transA false, batch 1), and with a mask a dense C.
 */
export function checkLowRank(
  kernel: string,
  s: ResolvedShape,
  lowRank: LowRank | undefined,
  v: Pick<MatmulVariant, 'transA' | 'lowRank' | 'maskedLowRank'>,
): void {
  const compiled = termKind(Boolean(v.lowRank), Boolean(v.maskedLowRank));
  const given = termKind(Boolean(lowRank), Boolean(lowRank?.mask));
  if (compiled !== given) throw new Error(`${kernel} was compiled for ${compiled}, not ${given}`);
  if (lowRank && (v.transA || s.batch !== 1)) throw new Error('a low-rank term needs transA false and batch 1');
  if (lowRank?.mask && (s.ldc !== s.N || s.offsetC !== 0)) throw new Error('a masked low-rank term needs a dense C');
}

/** An operand mask must be what the kernel was compiled for, on an fp32 operand, and never with a low-rank term. */
export function checkOperandMask(
  kernel: string,
  mask: OperandMask | undefined,
  v: Pick<MatmulVariant, 'maskedOperand' | 'lowRank' | 'halfB' | 'quantB'>,
): void {
  const name = (operand: 'a' | 'b' | undefined) => (operand ? `a mask on operand ${operand.toUpperCase()}` : 'no mask');
  if (v.maskedOperand !== mask?.operand) {
    throw new Error(`${kernel} was compiled for ${name(v.maskedOperand)}, not ${name(mask?.operand)}`);
  }
  if (v.maskedOperand && v.lowRank) throw new Error('an operand mask does not go with a low-rank term');
  if (v.maskedOperand === 'b' && (v.halfB || v.quantB)) throw new Error('a masked operand B must be fp32');
}

function matmulLabel(v: MatmulVariant): string {
  const family = v.tiled ? 'tiled' : 'registers';
  const vectors = usesVectorK(v) ? '_vk' : '';
  const lowRank = v.lowRank ? (v.maskedLowRank ? '_lrm' : '_lr') : '';
  const masked = v.maskedOperand ? `_m${v.maskedOperand}` : '';
  const slices = v.kSlices ? `x${v.kSlices}` : '';
  return `matmul_${family}_${v.transA ? 't' : 'n'}${v.transB ? 't' : 'n'}${v.halfB ? '_f16b' : ''}${v.quantB ? `_${v.quantB}b` : ''}${vectors}${lowRank}${masked}_${v.tileM}x${v.tileN}_${v.workgroupX}x${v.workgroupY}${slices}`;
}
