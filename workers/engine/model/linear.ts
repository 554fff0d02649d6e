import { type Projection, projectionKey, projectionShape } from '../../../core/model-config';
import type { Op } from '../gpu/ops';
import { GemvKernels, type GemvNorm, type GemvShape } from '../kernels/gemv';
import { type LowRank, type MatrixFormat, type OperandMask, quantOf } from '../kernels/matmul';
import type { Slabs } from '../kernels/rmsnorm';
import type { EngineKernels } from './kernels';
import type { GpuLora, LoraModule } from './lora';
import type { GpuWeights } from './weights';

/**
 * The linear layers of a layer's projections over `rows` rows, for the training step and the decoder:
 *   y [rows, out] = x [rows, in] · Wᵀ + s · (x Aᵀ) · Bᵀ + b        (W fp16 or quantized where the model is held so)
 *   dx [rows, in] = Σ dy · W + dropout'(d(x Aᵀ) · A),  dW += dyᵀ · x,  db += Σ_rows dy   (dW, db: full mode)
 * The low-rank term rides on the base product (kernels/matmul.ts); its x Aᵀ comes first, from `loraInputs`.
 * With `gemvs` (decoding), one row's products are matrix-vector products (kernels/gemv.ts), which can read x
 * through the RMSNorm before them; otherwise matmuls, the projections reading one input as one set of products
 * (kernels/matmul-set.ts).
 */

/** A gemv's fields for W stored in `format`. */
export const gemvFormat = (format: MatrixFormat) => ({ halfW: format === 'f16', quantW: quantOf(format) });

/** Each adapted projection's low-rank term, s (x Aᵀ) Bᵀ. */
export type LowRanks = Partial<Record<Projection, LowRank>>;

/** A projection's output gradient dy, and its adapter's share of dx (from LoraPlan.backward). */
export interface ProjectionGrad {
  projection: Projection;
  dy: GPUBuffer;
  lowRank?: LowRank;
}

export class Linear {
  constructor(
    private readonly k: EngineKernels,
    private readonly w: GpuWeights,
    readonly rows: number,
    /** One row's products as gemvs (decoding). */
    private readonly gemvs = false,
  ) {}

  /**
   * Whether products of this shape, W stored in `format`, are matmuls: without gemvs, several rows, or fp16 rows the
   * gemv cannot read.
   */
  usesMatmul(shape: GemvShape, format: MatrixFormat = this.w.projectionFormat): boolean {
    return !this.gemvs || this.rows > 1 || (format === 'f16' && !GemvKernels.halfFits(shape));
  }

  /**
   * y [rows, out] (= or += with `accumulate`) x · Wᵀ + low-rank term + b, for each (projection, y) reading x, x
   * read through `norm` where given (gemvs only). A gemv adds the bias as it stores, a matmul with a dispatch after.
   */
  forward(
    ops: Op[],
    layer: number,
    outputs: ReadonlyArray<[Projection, GPUBuffer]>,
    x: GPUBuffer,
    lowRanks: LowRanks,
    { accumulate = false, norm }: { accumulate?: boolean; norm?: GemvNorm } = {},
  ): void {
    const lw = this.w.layers[layer];
    const format = this.w.projectionFormat;
    const products = outputs.map(([projection, y]) => {
      const [out, inDim] = projectionShape(this.w.config, projection);
      const shape = { M: this.rows, N: out, K: inDim, beta: accumulate ? 1 : 0 };
      return { a: x, b: lw.proj[projection], c: y, shape, lowRank: lowRanks[projection], bias: lw.bias[projection] };
    });
    // The products share x and K, so they are all matmuls or all gemvs.
    const several = products.length > 1;
    const matmuls = this.usesMatmul(products[0].shape);
    if (several && matmuls && !norm) {
      ops.push(
        ...this.k.matmuls
          .setFor(
            'each',
            true,
            products.map((product) => product.shape),
            format,
          )
          .ops(products),
      );
      for (const { c, shape, bias } of products) {
        if (bias) ops.push(this.k.bias.addOp({ bias, y: c, rows: this.rows, dim: shape.N }));
      }
      return;
    }
    // One token's gemvs as one dispatch where the adapter takes sets (GPUs) and can bind them all.
    const set =
      several && !matmuls && this.k.choices.matmulSets && this.k.gemv.layout === 'cooperative'
        ? this.k.gemv.setOp({
            x,
            products: products.map(({ b, c, shape, lowRank, bias }) => ({ w: b, y: c, shape, lowRank, bias })),
            ...gemvFormat(format),
            norm,
          })
        : null;
    if (set) {
      ops.push(set);
      return;
    }
    for (const { b, c, shape, lowRank, bias } of products) {
      this.product(ops, x, b, c, shape, { lowRank, norm, bias, format });
    }
  }

  /**
   * y [rows, out] += x · Wᵀ + low-rank term + b: a block's last product, onto the residual stream (matmuls only).
   * Returns the partial sums it may leave (split-K's slices), for the next RMSNorm forward to add as it reads y.
   */
  forwardOnto(
    ops: Op[],
    layer: number,
    projection: Projection,
    x: GPUBuffer,
    y: GPUBuffer,
    lowRank: LowRank | undefined,
  ): Slabs {
    const [out, inDim] = projectionShape(this.w.config, projection);
    const shape = { M: this.rows, N: out, K: inDim };
    const set = this.k.matmuls.setFor('sum', true, [shape], this.w.projectionFormat);
    const product = { a: x, b: this.w.layers[layer].proj[projection], shape, lowRank };
    const { ops: productOps, ...partial } = set.partialSums([product], y, { M: this.rows, N: out, beta: 1 });
    ops.push(...productOps);
    this.addBias(ops, layer, projection, y);
    return partial;
  }

  /**
   * dx [rows, in] = Σ dy · W + each adapter's share, over the projections reading x, as one sum of products
   * (matmuls only). Where dx's reader adds partial sums as it reads (`partialReader`: an RMSNorm or SwiGLU
   * backward), the sum may stay in split-K's slices, returned. With `weightGrads` (full mode) dW and db too.
   */
  backward(
    ops: Op[],
    layer: number,
    grads: readonly ProjectionGrad[],
    x: GPUBuffer,
    dx: GPUBuffer,
    { partialReader, weightGrads }: { partialReader: boolean; weightGrads: ((key: string) => GPUBuffer) | null },
  ): Slabs {
    const N = this.rows;
    const lw = this.w.layers[layer];
    const products = grads.map(({ projection, dy, lowRank }) => {
      const [out, inDim] = projectionShape(this.w.config, projection);
      return { a: dy, b: lw.proj[projection], shape: { M: N, N: inDim, K: out }, lowRank };
    });
    const shapes = products.map((product) => product.shape);
    const set = this.k.matmuls.setFor('sum', false, shapes, this.w.projectionFormat);
    const shape = { M: N, N: shapes[0].N };
    let result: Slabs = { sum: dx, slabs: 1 };
    // Full mode's weight gradients below may run split-K, whose scratch the partial sums are: reduce them now.
    if (weightGrads || !partialReader) {
      ops.push(...set.sumOps(products, dx, shape));
    } else {
      const { ops: sumOps, ...partial } = set.partialSums(products, dx, shape);
      ops.push(...sumOps);
      result = partial;
    }
    if (!weightGrads) return result;
    for (const { projection, dy } of grads) {
      const [out, inDim] = projectionShape(this.w.config, projection);
      const key = projectionKey(layer, projection);
      const dW = { M: out, N: inDim, K: N, beta: 1 };
      ops.push(...this.k.matmuls.productFor(true, false, dW).ops(dy, x, weightGrads(key), dW));
      if (lw.bias[projection]) {
        ops.push(this.k.bias.gradOp({ dy, dbias: weightGrads(key.replace(/weight$/, 'bias')), rows: N, dim: out }));
      }
    }
    return result;
  }

  /**
   * xa [modules, rows, r] at slotOf(m, i) = dropout(x) · A_mᵀ for `modules`, all reading x (through maskOf(m)'s
   * mask where given), and the low-rank term each module's base product then adds. One row's are one gemv over the
   * modules' A as segments (gemvs), else one grouped matmul (kernels/grouped-matmul.ts): each product is a few
   * workgroups' work, which costs more in dispatches than in arithmetic.
   */
  loraInputs(
    ops: Op[],
    lora: GpuLora,
    modules: readonly LoraModule[],
    x: GPUBuffer,
    xa: GPUBuffer,
    { slotOf, maskOf, norm }: LoraInputOptions,
  ): LowRanks {
    const { products, lowRanks } = lora.inputProducts(modules, x, xa, this.rows, slotOf, maskOf);
    if (this.gemvs && this.rows === 1) {
      const r = lora.settings.r;
      const segments = { rows: r, offsets: modules.slice(1).map((m) => m.offsetA) };
      const shape = { N: r * modules.length, K: modules[0].inDim, offsetB: modules[0].offsetA, segments };
      ops.push(this.k.gemv.op({ x, w: lora.params, y: xa, shape, norm }));
    } else {
      ops.push(...this.k.grouped.ops(products, xa));
    }
    return lowRanks;
  }

  /**
   * y [rows, N] (= or +=) x [rows, K] · Wᵀ (+ low-rank term) (+ b), `ldc` apart, W stored in `format` (a
   * projection's by default): one gemv, or a matmul.
   */
  product(
    ops: Op[],
    x: GPUBuffer,
    w: GPUBuffer,
    y: GPUBuffer,
    shape: GemvShape & { ldc?: number },
    options: { lowRank?: LowRank; norm?: GemvNorm; bias?: GPUBuffer; format?: MatrixFormat } = {},
  ): void {
    const { lowRank, norm, bias, format = this.w.projectionFormat } = options;
    if (this.usesMatmul(shape, format)) {
      if (norm) throw new Error('only a gemv reads its input through a norm');
      const product = { M: this.rows, ...shape };
      ops.push(...this.k.matmuls.productFor(false, true, product, format).ops(x, w, y, product, { lowRank }));
      if (bias) ops.push(this.k.bias.addOp({ bias, y, rows: this.rows, dim: shape.N }));
      return;
    }
    ops.push(this.k.gemv.op({ x, w, y, shape, ...gemvFormat(format), lowRank, norm, bias }));
  }

  private addBias(ops: Op[], layer: number, projection: Projection, y: GPUBuffer): void {
    const bias = this.w.layers[layer].bias[projection];
    const dim = projectionShape(this.w.config, projection)[0];
    if (bias) ops.push(this.k.bias.addOp({ bias, y, rows: this.rows, dim }));
  }
}

export interface LoraInputOptions {
  /** Where module m (the i-th) writes its x Aᵀ in xa, in elements. */
  slotOf: (m: LoraModule, i: number) => number;
  maskOf?: (m: LoraModule) => OperandMask | undefined;
  /** The RMSNorm a gemv applies to x as it reads it. */
  norm?: GemvNorm;
}
