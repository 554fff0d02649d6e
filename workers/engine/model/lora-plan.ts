import type { Projection } from '../../../core/model-config';
import type { Op } from '../gpu/ops';
import type { GroupedProduct } from '../kernels/grouped-matmul';
import type { LowRank, OperandMask } from '../kernels/matmul';
import type { LowRankIn, LowRankOut } from '../kernels/rmsnorm';
import type { EngineKernels } from './kernels';
import type { Linear, LowRanks } from './linear';
import type { GpuLora, LoraModule } from './lora';

/**
 * Where a training step's LoRA products run, y = x Wᵀ + s · (dropout(x) Aᵀ) Bᵀ per adapted module m:
 *   xa[m]  [N, r]    = dropout(x) · A_mᵀ            (written by the RMSNorm before q/k/v and gate/up on GPUs)
 *   dxa[m] [N, r]    = s · dy · B_m                 (o_proj's and down_proj's by the RMSNorm backward on GPUs)
 *   dB_m   [out, r] += s · dyᵀ · xa[m]
 *   dA_m   [r, in]  += dxa[m]ᵀ · dropout(x)          (the mask drawn again from the step's seed)
 * Each layer's modules hold slot i of its xa and of the shared dxa (i its position among the layer's modules).
 * The weight gradients wait in a list and run as few grouped dispatches (`flush`), before dy changes.
 */

/** The projections that add onto the residual stream, whose output gradient is the stream's gradient. */
const RESIDUAL_WRITERS: readonly Projection[] = ['o_proj', 'down_proj'];

/** A layer's adapted modules, in layout order. */
export function layerModules(lora: GpuLora | null, layer: number): LoraModule[] {
  return lora ? lora.modules.filter((m) => m.layer === layer) : [];
}

export class LoraPlan {
  /** Weight-gradient products recorded but not yet run (see flush). */
  private grads: GroupedProduct[] = [];

  constructor(
    private readonly k: EngineKernels,
    private readonly lora: GpuLora | null,
    private readonly linear: Linear,
    private readonly buffers: {
      /** Layer l's x Aᵀ, [modules, N, r]; null where it has no module. */
      xa: (layer: number) => GPUBuffer | null;
      /** d(x Aᵀ) of the layer being differentiated, by the same slots; null in a forward-only step. */
      dxa: GPUBuffer | null;
      /** The step's dropout state ([seed, on]), when the adapter has dropout. */
      dropoutState: GPUBuffer | null;
    },
    /** The device's storage buffers per shader stage. */
    private readonly maxStorageBuffers: number,
  ) {}

  /**
   * Whether the RMSNorm kernels write LoRA's small products beside their rows (xa after the norms, dxa of o_proj
   * and down_proj in the backward), sparing grouped dispatches: on GPUs, where dispatches cost more than these
   * products; CPU adapters' grouped matmul ran them faster (SwiftShader's step was 5% slower with the norms).
   */
  get normsWrite(): boolean {
    return this.k.choices.rows === 'cooperative';
  }

  /** Where m's xa and dxa start in its layer's buffers, in elements. */
  slot(m: LoraModule): number {
    return layerModules(this.lora, m.layer).indexOf(m) * this.linear.rows * (this.lora?.settings.r ?? 0);
  }

  /** m's dropout on the adapter path's input x, read as `operand` of its product; x's element index is the mask's. */
  dropoutOf(m: LoraModule, operand: 'a' | 'b'): OperandMask | undefined {
    const state = this.buffers.dropoutState;
    if (!state || !this.lora) return undefined;
    return { operand, state, module: m.index, p: this.lora.settings.loraDropout };
  }

  /**
   * xa of `projections`' modules (q/k/v or gate/up) for the RMSNorm forward producing their input x to write
   * (`lowRankIn`), and their low-rank terms. Null where the norms do not write them, or the device cannot bind a
   * norm's buffers (carrying the residual, adding partial sums and reading a mask binds nine): then `inputs`.
   */
  normInputs(
    layer: number,
    projections: readonly Projection[],
    x: GPUBuffer,
  ): { lowRankIn?: LowRankIn; lowRanks: LowRanks } | null {
    const { lora, xa, modules } = this.modulesOf(layer, projections);
    if (!lora || !xa || modules.length === 0) return { lowRanks: {} };
    if (!this.normsWrite || this.maxStorageBuffers < 9) return null;
    const { lowRanks } = lora.inputProducts(modules, x, xa, this.linear.rows, (m) => this.slot(m));
    const state = this.buffers.dropoutState;
    const lowRankIn: LowRankIn = {
      a: lora.params,
      rank: lora.settings.r,
      xa,
      modules: modules.map((m) => ({ offsetA: m.offsetA, offsetOut: this.slot(m), moduleId: m.index })),
      mask: state ? { state, p: lora.settings.loraDropout } : undefined,
    };
    return { lowRankIn, lowRanks };
  }

  /** xa of `projections`' modules, all reading x, as one grouped dispatch; and their low-rank terms. */
  inputs(ops: Op[], layer: number, projections: readonly Projection[], x: GPUBuffer): LowRanks {
    const { lora, xa, modules } = this.modulesOf(layer, projections);
    if (!lora || !xa || modules.length === 0) return {};
    return this.linear.loraInputs(ops, lora, modules, x, xa, {
      slotOf: (m) => this.slot(m),
      maskOf: (m) => this.dropoutOf(m, 'a'),
    });
  }

  /**
   * dxa = s · dy · B of `projection` (o_proj, down_proj) for the RMSNorm backward writing its dy, the residual
   * stream's gradient, to write; none where the norms do not, or the module is not adapted.
   */
  residualOut(layer: number, projection: Projection): LowRankOut | undefined {
    const lora = this.lora;
    const m = lora?.module(layer, projection);
    const dxa = this.buffers.dxa;
    if (!this.normsWrite || !lora || !m || !dxa || !this.buffers.xa(layer)) return undefined;
    return {
      b: lora.params,
      offsetB: m.offsetB,
      rank: lora.settings.r,
      scale: lora.scale,
      out: dxa,
      offsetOut: this.slot(m),
    };
  }

  /** dxa = s · dy · B of the adapted modules among `grads` as one grouped dispatch, but those residualOut wrote. */
  inputGrads(ops: Op[], layer: number, grads: ReadonlyArray<{ projection: Projection; dy: GPUBuffer }>): void {
    const { lora } = this;
    const dxa = this.buffers.dxa;
    if (!lora || !dxa || !this.buffers.xa(layer)) return;
    const products = grads.flatMap(({ projection, dy }) => {
      const m = lora.module(layer, projection);
      if (!m || (this.normsWrite && RESIDUAL_WRITERS.includes(projection))) return [];
      const shape = { M: this.linear.rows, N: lora.settings.r, K: m.outDim, offsetB: m.offsetB, offsetC: this.slot(m) };
      return [{ a: dy, b: lora.params, transA: false, transB: false, shape: { ...shape, alpha: lora.scale } }];
    });
    if (products.length > 0) ops.push(...this.k.grouped.ops(products, dxa));
  }

  /**
   * The adapter's part of `projection`'s backward: records dB and dA for `flush`, and returns its share of dx,
   * dropout'(dxa · A), as a low-rank term of the base product (carrying the forward's mask). None without a module.
   */
  backward(layer: number, projection: Projection, x: GPUBuffer, dy: GPUBuffer): LowRank | undefined {
    const { lora } = this;
    const m = lora?.module(layer, projection);
    const xa = this.buffers.xa(layer);
    const dxa = this.buffers.dxa;
    if (!m || !xa || !dxa || !lora) return undefined;
    const N = this.linear.rows;
    const r = lora.settings.r;
    const offset = this.slot(m);
    this.grads.push(
      // dB [out, r] += s · dyᵀ · xa
      {
        a: dy,
        b: xa,
        transA: true,
        transB: false,
        shape: { M: m.outDim, N: r, K: N, offsetB: offset, offsetC: m.offsetB, alpha: lora.scale, beta: 1 },
      },
      // dA [r, in] += dxaᵀ · dropout(x)
      {
        a: dxa,
        b: x,
        transA: true,
        transB: false,
        shape: { M: r, N: m.inDim, K: N, offsetA: offset, offsetC: m.offsetA, beta: 1 },
        mask: this.dropoutOf(m, 'b'),
      },
    );
    const lowRank: LowRank = { l: dxa, r: lora.params, rank: r, offsetL: offset, offsetR: m.offsetA, scale: 1 };
    const state = this.buffers.dropoutState;
    if (state) lowRank.mask = { state, module: m.index, p: lora.settings.loraDropout };
    return lowRank;
  }

  /** The weight gradients recorded since the last flush, as grouped dispatches: before the dy they read changes. */
  flush(ops: Op[]): void {
    if (this.grads.length === 0 || !this.lora) return;
    ops.push(...this.k.grouped.ops(this.grads, this.lora.grads));
    this.grads = [];
  }

  private modulesOf(layer: number, projections: readonly Projection[]) {
    const { lora } = this;
    const modules = projections.flatMap((p) => lora?.module(layer, p) ?? []);
    return { lora, xa: this.buffers.xa(layer), modules };
  }
}
