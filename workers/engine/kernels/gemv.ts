import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import {
  cooperativeShader,
  GEMV_PARAMS,
  type GemvVariant,
  quantVectorShader,
  ROWS,
  rowShader,
  VEC_ROWS,
  vectorRowShader,
  WG,
} from './gemv-wgsl';
import type { LowRank } from './matmul';
import { type QuantFormat, quantRefusal } from './quant';
import type { GatedActivation } from './swiglu';
import type { RowLayout } from './wgsl';

/**
 * Decoding's matrix-vector product, the matmul's x · Wᵀ at M = 1: y = alpha (W · x + s B (A x) + bias) + beta y,
 * W [N, K] row-major (fp16 pairs in u32 words, fp32, or quantized: quant.ts), x [K], y [N], at element offsets.
 *   low-rank term (matmul.ts's `LowRank`, L [rank] = x Aᵀ, R [N, rank] = B): LoRA's second product in the same pass
 *   `gatedOp`: y = silu(W x) ⊙ (U x), the MLP's gate, up and SwiGLU in one dispatch (or GeGLU: the tanh GELU)
 *   `segments`: W's rows from several offsets (q, k and v's LoRA A as one product)
 *   `norm`: x read as RMSNorm(x) ⊙ g, Σ x² summed in the same pass (the norm's dispatch and output spared)
 *   `setOp`: several products of one x (q, k, v) in one dispatch on GPUs, where decoding waits on dispatches
 * Layouts (`RowLayout`): a workgroup per ROWS outputs striding along K together (GPUs), or an invocation per output
 * (VEC_ROWS with whole vectors) walking its row alone (CPU adapters, where barriers cost more than the work).
 */

export interface GemvShape {
  N: number;
  K: number;
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  alpha?: number;
  beta?: number;
  /**
   * W's rows in segments of `rows` rows, the first at offsetB, the next at `offsets` (up to 3): several LoRA
   * modules' A (all reading x) as one product. Default: one segment of N rows.
   */
  segments?: { rows: number; offsets: readonly number[] };
}

/** An RMSNorm a gemv applies to x as it reads it: the norm's weight g [K] and its epsilon. */
export interface GemvNorm {
  weight: GPUBuffer;
  eps: number;
}

/** What a gemv does beside W x: read fp16 W, add a low-rank term and a bias, read x through a norm. */
export interface GemvExtras {
  halfW?: boolean;
  /** W (and U) quantized (quant.ts): whole matrices (offset 0, no segments). */
  quantW?: QuantFormat;
  lowRank?: LowRank;
  norm?: GemvNorm;
  /** [N], added to each output (fp32). */
  bias?: GPUBuffer;
}

/** GEMV_PARAMS of a product: its shape, up to two low-rank terms (W's, U's), its norm's eps, in a set its first group. */
function uniformsOf(s: GemvShape, terms: readonly LowRank[], norm?: GemvNorm, firstGroup = 0) {
  const segment = s.segments ?? { rows: s.N, offsets: [] };
  const [w, u] = terms;
  return GEMV_PARAMS.pack({
    N: s.N,
    K: s.K,
    offsetA: s.offsetA ?? 0,
    offsetB: s.offsetB ?? 0,
    offsetC: s.offsetC ?? 0,
    alpha: s.alpha ?? 1,
    beta: s.beta ?? 0,
    segmentRows: segment.rows,
    rank: w?.rank ?? 0,
    offsetL: w?.offsetL ?? 0,
    offsetR: w?.offsetR ?? 0,
    scaleL: w?.scale ?? 0,
    rank2: u?.rank ?? 0,
    offsetL2: u?.offsetL ?? 0,
    offsetR2: u?.offsetR ?? 0,
    scaleL2: u?.scale ?? 0,
    segments: segment.offsets,
    eps: norm?.eps ?? 0,
    firstGroup,
  });
}

/** Every element offset W's rows start from: offsetB, then the later segments'. */
const offsetsOf = (s: GemvShape) => [s.offsetB ?? 0, ...(s.segments?.offsets ?? [])];

/** One product: y from x and W. */
export interface GemvIo extends GemvExtras {
  x: GPUBuffer;
  w: GPUBuffer;
  y: GPUBuffer;
  shape: GemvShape;
}

/** The MLP's gate W and up U over one x into y, each with its own low-rank term; SiLU unless told. */
export interface GatedGemvIo extends Omit<GemvIo, 'lowRank' | 'bias'> {
  u: GPUBuffer;
  lowRank?: { w?: LowRank; u?: LowRank };
  activation?: GatedActivation;
}

/** Products of one x, each with its own W, y, shape, low-rank term and bias. */
export interface GemvSetIo extends Pick<GemvExtras, 'halfW' | 'quantW' | 'norm'> {
  x: GPUBuffer;
  products: ReadonlyArray<Pick<GemvIo, 'w' | 'y' | 'shape' | 'lowRank' | 'bias'>>;
}

export class GemvKernels {
  /** Compiled on first use, by family and variant. */
  private readonly kernels = new Map<string, Kernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly layout: RowLayout = 'cooperative',
  ) {}

  /** Whether fp16 W can take this shape (pairs must not straddle words). */
  static halfFits(s: GemvShape): boolean {
    return s.K % 2 === 0 && offsetsOf(s).every((o) => o % 2 === 0);
  }

  /** Whether W's rows and x split into whole vectors: 4 floats, or 8 halves. */
  static vectorFits(s: GemvShape, halfW: boolean): boolean {
    const perVector = halfW ? 8 : 4;
    return s.K % perVector === 0 && offsetsOf(s).every((o) => o % perVector === 0) && (s.offsetA ?? 0) % 4 === 0;
  }

  /** y ← alpha (W x [+ the low-rank term] [+ bias]) + beta y, x read through `norm` where given. */
  op({ x, w, y, shape, halfW = false, quantW, lowRank, norm, bias }: GemvIo): Op {
    const v = { halfW, quantW, lowRank: Boolean(lowRank), gated: false, normed: Boolean(norm), biased: Boolean(bias) };
    return this.dispatch(v, [x, w, y], shape, lowRank ? [lowRank] : [], norm, bias);
  }

  /**
   * y ← act(W x + its low-rank term) ⊙ (U x + its low-rank term) (no alpha or beta; act SiLU, or the tanh GELU),
   * W and U of one shape, their terms reading one L and one R buffer.
   */
  gatedOp({ x, w, u, y, shape, halfW = false, quantW, lowRank = {}, norm, activation = 'silu' }: GatedGemvIo): Op {
    const terms = [lowRank.w, lowRank.u];
    const present = terms.filter((t): t is LowRank => t !== undefined);
    if (present.some((t) => t.l !== present[0].l || t.r !== present[0].r)) {
      throw new Error("a gated gemv's two low-rank terms must read the same L and R buffers");
    }
    // An absent term counts as rank 0 over the other's buffers.
    const none = present[0] && { ...present[0], rank: 0, offsetL: 0, offsetR: 0, scale: 0 };
    const gelu = activation === 'gelu';
    const v = { halfW, quantW, lowRank: present.length > 0, gated: true, gelu, normed: Boolean(norm), biased: false };
    return this.dispatch(v, [x, w, u, y], shape, none ? terms.map((t) => t ?? none) : [], norm);
  }

  private dispatch(
    v: GemvVariant,
    buffers: GPUBuffer[],
    s: GemvShape,
    terms: LowRank[],
    norm?: GemvNorm,
    bias?: GPUBuffer,
  ): Op {
    if (v.halfW && !GemvKernels.halfFits(s))
      throw new Error(`fp16 gemv needs an even K and offsets (K ${s.K}, offsets ${offsetsOf(s)})`);
    // A q8 W may start at any whole row (a slice of the LM head's vocabulary); a 4-bit one is whole.
    const offset = s.offsetB ?? 0;
    const wholeRows = v.quantW === 'q8' ? offset % s.K === 0 : offset === 0;
    if (v.quantW && (s.segments || !wholeRows || quantRefusal(v.quantW, s.K))) {
      throw new Error(
        `a ${v.quantW} gemv reads whole matrices (${v.quantW === 'q8' ? 'from a whole row' : 'offset 0'}, no segments) of whole groups (K ${s.K})`,
      );
    }
    const segment = s.segments ?? { rows: s.N, offsets: [] };
    if (segment.offsets.length > 3 || segment.rows * (1 + segment.offsets.length) !== s.N) {
      throw new Error(`a gemv's ${s.N} rows cannot be ${1 + segment.offsets.length} segments of ${segment.rows}`);
    }
    // The row layout reads vectors where the shape allows (its vector variant), else scalars.
    // A quantized W is read eight weights a step against x in vectors, where its offset and K allow.
    const vectors = v.quantW ? (s.offsetA ?? 0) % 4 === 0 && s.K % 8 === 0 : GemvKernels.vectorFits(s, v.halfW);
    const family = this.layout === 'row' ? (vectors ? 'vector' : 'row') : 'cooperative';
    const outputsPerGroup = family === 'vector' ? WG * VEC_ROWS : family === 'row' ? WG : ROWS;
    return this.kernel(family, v).op(
      [
        ...buffers,
        ...(norm ? [norm.weight] : []),
        ...(bias ? [bias] : []),
        ...(terms.length > 0 ? [terms[0].l, terms[0].r] : []),
      ],
      uniformsOf(s, terms, norm),
      grid1d(s.N, outputsPerGroup),
    );
  }

  /**
   * Each product's y ← alpha (W x [+ its low-rank term] [+ its bias]) + beta y in one dispatch, each from a fresh
   * workgroup (the cooperative layout only); biases on all or none, terms reading one L and one R. Null where the
   * device cannot bind them all.
   */
  setOp({ x, products, halfW = false, quantW, norm }: GemvSetIo): Op | null {
    if (this.layout !== 'cooperative') throw new Error('a gemv set runs in the cooperative layout');
    // Quantized matrices are read by functions of the global W, which a set's products are handed by pointer.
    if (quantW) return null;
    const biases = products.flatMap((product) => (product.bias ? [product.bias] : []));
    const terms = products.flatMap((product) => (product.lowRank ? [product.lowRank] : []));
    if (biases.length !== 0 && biases.length !== products.length)
      throw new Error('a gemv set has biases on all or none');
    if (terms.some((t) => t.l !== terms[0].l || t.r !== terms[0].r)) {
      throw new Error("a gemv set's low-rank terms must read one L and one R buffer");
    }
    for (const { shape } of products) {
      if (shape.segments) throw new Error("a gemv set's products are whole matrices, not segments");
      if (halfW && !GemvKernels.halfFits(shape))
        throw new Error(`fp16 gemv needs an even K and offsets (K ${shape.K})`);
    }
    const buffers = [
      x,
      ...products.map((product) => product.w),
      ...products.map((product) => product.y),
      ...(norm ? [norm.weight] : []),
      ...biases,
      ...(terms.length > 0 ? [terms[0].l, terms[0].r] : []),
    ];
    if (buffers.length > this.device.limits.maxStorageBuffersPerShaderStage) return null;
    const v = { halfW, lowRank: terms.length > 0, gated: false, normed: Boolean(norm), biased: biases.length > 0 };
    let groups = 0;
    const uniforms = products.flatMap(({ shape, lowRank }) => {
      const first = groups;
      groups += Math.ceil(shape.N / ROWS);
      return uniformsOf(shape, lowRank ? [lowRank] : [], norm, first);
    });
    return this.kernel('cooperative', v, products.length).op(buffers, uniforms, grid1d(groups, 1));
  }

  private kernel(family: 'cooperative' | 'row' | 'vector', v: GemvVariant, set = 0): Kernel {
    const key = `${family}${v.halfW ? ' f16w' : ''}${v.quantW ? ` ${v.quantW}w` : ''}${v.lowRank ? ' low-rank' : ''}${v.gated ? ' gated' : ''}${v.gelu ? ' gelu' : ''}${v.normed ? ' normed' : ''}${v.biased ? ' bias' : ''}${set ? ` set of ${set}` : ''}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const vector = v.quantW ? quantVectorShader : vectorRowShader;
      const code = set
        ? cooperativeShader(v, set)
        : { cooperative: cooperativeShader, row: rowShader, vector }[family](v);
      kernel = new Kernel(this.device, code, `gemv ${key}`);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }
}
