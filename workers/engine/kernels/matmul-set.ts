import { Kernel, type UniformValue } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import {
  type LowRank,
  type MatmulShape,
  type MatmulVariant,
  matmulSetShader,
  resolveMatmulShape,
  type SetLayout,
} from './matmul';
import { matmulUniforms } from './matmul-wgsl';
import type { SplitKReduce } from './split-k';

/**
 * Products of the tiled family (matmul.ts) in one dispatch, workgroup z running product z: C_z = alpha ·
 * op(A_z)·op(B_z) [+ scale · L·op(R_z)] + beta · C_z, each with its own operands, output, shape and low-rank term,
 * all terms reading one L and one R. For the layers that read one input (q/k/v, gate/up): at 128 tokens a GPU's
 * step waits on its dispatches more than on these products' arithmetic. The shader is written per form of set
 * (which bound buffers each product reads and writes), so no load chooses a buffer.
 * `sumOps`: Σ_z products into one C (an input gradient dx = Σ dyᵢ·Wᵢ), each K in `splits` slices of partial sums,
 * then split-K's reduce; `partialOp` leaves the partial sums to their reader (an RMSNorm backward).
 * CPU twin: matmul.cpu.ts's `matmulCpu`, product by product.
 */
export interface SetProduct {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  /** One matrix (no batch); offsets, leading dimensions, alpha and beta as matmul.ts's. */
  shape: MatmulShape;
  lowRank?: LowRank;
}

/** A sum of products: its output c (rows at offsetC, ldc apart), each K in `splits` slices of partial sums. */
export interface SumIo {
  c: GPUBuffer;
  shape: Pick<MatmulShape, 'M' | 'N' | 'ldc' | 'offsetC' | 'alpha' | 'beta'>;
  splits: number;
  scratch: GPUBuffer;
}

export class MatmulSetKernel {
  /** Compiled on first use, per form of set. */
  private readonly kernels = new Map<string, Kernel>();

  /** `variant`: the tiled layout and tile every product runs; its low-rank flags are set per set. */
  constructor(
    private readonly device: GPUDevice,
    readonly variant: MatmulVariant,
  ) {}

  /** Storage buffers a set of these products binds (operands, outputs, then L and R, and the dropout state). */
  static bindings(products: readonly SetProduct[]): number {
    const distinct = (pick: (x: SetProduct) => GPUBuffer) => new Set(products.map(pick)).size;
    const terms = products.flatMap((x) => (x.lowRank ? [x.lowRank] : []));
    return (
      distinct((x) => x.a) +
      distinct((x) => x.b) +
      distinct((x) => x.c) +
      (terms.length > 0 ? 2 : 0) +
      (terms.some((t) => t.mask) ? 1 : 0)
    );
  }

  /** Whether the device can bind a set of these products in one dispatch. */
  fits(products: readonly SetProduct[]): boolean {
    return MatmulSetKernel.bindings(products) <= this.device.limits.maxStorageBuffersPerShaderStage;
  }

  /** One dispatch running every product. Products of a set run at once: their outputs must not overlap. */
  op(products: readonly SetProduct[]): Op {
    if (products.length === 0) throw new Error('a matmul set needs a product');
    if (!this.fits(products)) {
      throw new Error(`a matmul set of ${products.length} products binds more storage buffers than this device allows`);
    }
    const terms = products.flatMap((x) => (x.lowRank ? [x.lowRank] : []));
    if (terms.length > 0 && this.variant.transA) throw new Error('a low-rank term needs transA false');
    if (terms.some((t) => t.l !== terms[0].l || t.r !== terms[0].r)) {
      throw new Error("a matmul set's low-rank terms must read one L and one R buffer");
    }
    const masks = terms.flatMap((t) => (t.mask ? [t.mask] : []));
    if (masks.length > 0 && (masks.length !== terms.length || masks.some((m) => m.state !== masks[0].state))) {
      throw new Error("a matmul set's low-rank terms must all carry a mask, from one dropout state, or none");
    }
    const lists = { a: [] as GPUBuffer[], b: [] as GPUBuffer[], c: [] as GPUBuffer[] };
    const index = (list: GPUBuffer[], buffer: GPUBuffer) => {
      const i = list.indexOf(buffer);
      return i >= 0 ? i : list.push(buffer) - 1;
    };
    const forms: SetLayout['forms'] = [];
    const uniforms: UniformValue[] = [];
    let columns = 0;
    let rows = 0;
    for (const x of products) {
      const s = resolveMatmulShape(x.shape, this.variant);
      if (s.batch !== 1) throw new Error('a matmul set runs single products, not batches');
      const form = { a: index(lists.a, x.a), b: index(lists.b, x.b), c: index(lists.c, x.c) };
      let f = forms.findIndex((g) => g.a === form.a && g.b === form.b && g.c === form.c);
      if (f < 0) f = forms.push(form) - 1;
      uniforms.push(...matmulUniforms(s, x.lowRank, undefined, f));
      columns = Math.max(columns, s.N);
      rows = Math.max(rows, s.M);
    }
    const variant = { ...this.variant, lowRank: terms.length > 0, maskedLowRank: masks.length > 0 };
    const layout = { as: lists.a.length, bs: lists.b.length, cs: lists.c.length, forms, products: products.length };
    const extra = [
      ...(terms.length > 0 ? [terms[0].l, terms[0].r] : []),
      ...(masks.length > 0 ? [masks[0].state] : []),
    ];
    const BM = variant.tileM * variant.workgroupY;
    const BN = variant.tileN * variant.workgroupX;
    return this.kernel(variant, layout).op([...lists.a, ...lists.b, ...lists.c, ...extra], uniforms, [
      Math.ceil(columns / BN),
      Math.ceil(rows / BM),
      products.length,
    ]);
  }

  /**
   * c = alpha · Σ products + beta · c (their own C unused), all M x N: `partialOp`'s slabs, then `reduce` adds them.
   */
  sumOps(products: readonly Omit<SetProduct, 'c'>[], o: SumIo & { reduce: SplitKReduce }): Op[] {
    const { op, slabs } = this.partialOp(products, o);
    const shape = resolveMatmulShape({ ...o.shape, K: 1 }, this.variant);
    return [op, o.reduce.op({ scratch: o.scratch, c: o.c, shape, splits: slabs })];
  }

  /**
   * Σ products as `slabs` partial sums [slabs, M, N] in `scratch` (`sumScratchBytes`), each product's K in `splits`
   * slices, its low-rank term on the first.
   */
  partialOp(
    products: readonly Omit<SetProduct, 'c'>[],
    { shape: { M, N }, splits, scratch }: Omit<SumIo, 'c'>,
  ): { op: Op; slabs: number } {
    const { transA, transB } = this.variant;
    const slabs: SetProduct[] = [];
    for (const x of products) {
      const s = resolveMatmulShape(x.shape, this.variant);
      if (s.M !== M || s.N !== N) throw new Error(`a sum of products needs each ${M} x ${N}, not ${s.M} x ${s.N}`);
      const slice = Math.ceil(s.K / splits);
      for (let first = 0; first < s.K; first += slice) {
        const K = Math.min(slice, s.K - first);
        slabs.push({
          a: x.a,
          b: x.b,
          c: scratch,
          shape: {
            M,
            N,
            K,
            lda: s.lda,
            ldb: s.ldb,
            // The slice's columns of op(A) (rows, when A is stored transposed); likewise op(B)'s rows.
            offsetA: s.offsetA + (transA ? first * s.lda : first),
            offsetB: s.offsetB + (transB ? first : first * s.ldb),
            offsetC: slabs.length * M * N,
          },
          lowRank: first === 0 ? x.lowRank : undefined,
        });
      }
    }
    return { op: this.op(slabs), slabs: slabs.length };
  }

  /** Bytes of partial sums `sumOps` writes for these products. */
  static sumScratchBytes(products: readonly Pick<SetProduct, 'shape'>[], splits: number): number {
    const slabs = products.reduce((n, x) => n + Math.ceil(x.shape.K / Math.ceil(x.shape.K / splits)), 0);
    const { M, N } = products[0].shape;
    return slabs * M * N * 4;
  }

  private kernel(variant: MatmulVariant, layout: SetLayout): Kernel {
    const code = matmulSetShader(variant, layout);
    let kernel = this.kernels.get(code);
    if (!kernel) {
      kernel = new Kernel(this.device, code, `matmul_set_${layout.products}`);
      this.kernels.set(code, kernel);
    }
    return kernel;
  }
}
