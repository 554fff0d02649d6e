import type { AdapterSummary } from '../../../core/adapter';
import { AdamWKernels } from '../kernels/adamw';
import { AttentionKernels, type AttentionLayout } from '../kernels/attention';
import { BiasKernels } from '../kernels/bias';
import { CrossEntropyKernels } from '../kernels/cross-entropy';
import { DecodeAttentionKernels } from '../kernels/decode-attention';
import { EmbeddingKernels } from '../kernels/embedding';
import { GemvKernels } from '../kernels/gemv';
import { GroupedMatmul } from '../kernels/grouped-matmul';
import { RmsNormKernels } from '../kernels/rmsnorm';
import { RopeKernels } from '../kernels/rope';
import { SampleKernel } from '../kernels/sample';
import { ScoreHeadKernels } from '../kernels/score-head';
import { SwiGluKernels } from '../kernels/swiglu';
import type { RowLayout } from '../kernels/wgsl';
import { CPU_MATMUL_TILE, GPU_MATMUL_CANDIDATES, type MatmulTile, MatmulTuner } from './matmul-tuner';
import type { TuningStore } from './tuning-store';

/**
 * The kernel variants an adapter runs fastest. CPU adapters (SwiftShader, lavapipe): register-block matmuls, one
 * variant for everything, and an invocation per row in the kernels that reduce along rows (gemv, decode attention,
 * RMSNorm), with no barriers. GPUs: workgroup-memory matmul tiles, each product of a step timed among `tune`
 * candidates before the step runs, and workgroups sharing each row.
 */
export interface KernelChoices {
  /** The matmul variant of products not tuned (all of them without `tune`). */
  matmul: MatmulTile;
  /** Candidates timed per product before a training step runs; null: no tuning. */
  tune: MatmulTile[] | null;
  rows: RowLayout;
  /**
   * CPU adapters: an invocation per block of query (or key) rows, so each key (or query) it reads serves them all.
   * GPUs: a workgroup per tile of rows, so short sequences still fill the chip.
   */
  attention: AttentionLayout;
  /**
   * Invocations sharing each block of LoRA's grouped weight-gradient products, each walking part of K (tokens):
   * one per block on CPU adapters (no barriers); on GPUs, whose time there is a walk of K waiting on loads, more.
   */
  groupedKSlices: number;
  /**
   * Hold frozen matrices at fp16 where a run allows it (LoRA training, generation): half the memory, and less to
   * read on GPUs. CPU adapters keep fp32: unpacking halves made a SwiftShader step take twice as long.
   */
  halfWeights: boolean;
  /**
   * The projections reading one input (q/k/v, gate/up) as one set of products (kernels/matmul-set.ts), forward and
   * input gradient, where tuning does not find them faster separately. Needs `pointerParameters`.
   */
  matmulSets: boolean;
}

export const CPU_KERNELS: KernelChoices = {
  matmul: CPU_MATMUL_TILE,
  tune: null,
  rows: 'row',
  attention: { kind: 'rows', block: 4 },
  groupedKSlices: 1,
  halfWeights: false,
  matmulSets: false,
};
export const GPU_KERNELS: KernelChoices = {
  matmul: GPU_MATMUL_CANDIDATES[0],
  tune: GPU_MATMUL_CANDIDATES,
  rows: 'cooperative',
  attention: { kind: 'tiles', tile: 16 },
  groupedKSlices: 8,
  halfWeights: true,
  matmulSets: true,
};

/** The choices for an adapter: software adapters report themselves as fallback adapters. */
export function kernelChoicesFor(
  adapter: Pick<AdapterSummary, 'isFallbackAdapter' | 'pointerParameters'>,
): KernelChoices {
  return adapter.isFallbackAdapter ? CPU_KERNELS : { ...GPU_KERNELS, matmulSets: adapter.pointerParameters };
}

/** Every kernel the transformer uses, compiled once per device. */
export class EngineKernels {
  readonly rmsnorm: RmsNormKernels;
  readonly rope: RopeKernels;
  readonly attention: AttentionKernels;
  readonly swiglu: SwiGluKernels;
  readonly bias: BiasKernels;
  readonly embedding: EmbeddingKernels;
  readonly crossEntropy: CrossEntropyKernels;
  readonly adamw: AdamWKernels;
  readonly decodeAttention: DecodeAttentionKernels;
  readonly gemv: GemvKernels;
  /** Several small products in one dispatch: LoRA's weight gradients. */
  readonly grouped: GroupedMatmul;
  /** A token per row drawn from logits on the GPU (sampling without cuts). */
  readonly sample: SampleKernel;
  readonly scoreHead: ScoreHeadKernels;
  /** Picks each matmul's variant; `tune` it on hardware adapters before recording a plan for speed. */
  readonly matmuls: MatmulTuner;

  /** Whether the tuning store's choices were read (once per device). */
  private restored = false;
  /** Plans over the matmul products (training steps, decoders) to record again when tuning picks new variants. */
  private readonly plans = new Set<{ rerecord(): void }>();

  /** `tuningStore`: where matmul tuning is kept across sessions (see tuning-store.ts); null keeps it in memory. */
  constructor(
    readonly device: GPUDevice,
    readonly choices: KernelChoices = CPU_KERNELS,
    private readonly tuningStore: TuningStore | null = null,
  ) {
    this.matmuls = new MatmulTuner(device, choices.matmul, choices.matmulSets);
    this.rmsnorm = new RmsNormKernels(device, choices.rows);
    this.rope = new RopeKernels(device);
    this.attention = new AttentionKernels(device, choices.attention);
    this.swiglu = new SwiGluKernels(device);
    this.bias = new BiasKernels(device);
    this.embedding = new EmbeddingKernels(device);
    this.crossEntropy = new CrossEntropyKernels(device);
    this.adamw = new AdamWKernels(device);
    this.decodeAttention = new DecodeAttentionKernels(device, choices.rows);
    this.gemv = new GemvKernels(device, choices.rows);
    this.grouped = new GroupedMatmul(
      device,
      { rows: choices.matmul.tileM, cols: choices.matmul.tileN },
      choices.groupedKSlices,
    );
    this.scoreHead = new ScoreHeadKernels(device);
    this.sample = new SampleKernel(device);
  }

  /**
   * Has `plan` recorded again whenever tuning picks new variants, until `untrack`: every step and decoder alive
   * then (a run's, its KL reference's, a reward model's, policy optimization's sampler) runs each product on its
   * best variant, whoever made it first.
   */
  track(plan: { rerecord(): void }): void {
    this.plans.add(plan);
  }

  untrack(plan: { rerecord(): void }): void {
    this.plans.delete(plan);
  }

  /**
   * Times the candidate variants on every matmul product recorded so far and not yet tuned, when the choices tune,
   * after adopting what the tuning store kept from earlier sessions (then only new shapes are timed, and the store
   * gets them); when a variant may have changed, the tracked plans are recorded again, and it answers true.
   */
  async tuneMatmuls(): Promise<boolean> {
    const candidates = this.choices.tune;
    if (!candidates) return false;
    let settled = 0;
    if (this.tuningStore && !this.restored) {
      settled = this.matmuls.restore(await this.tuningStore.load(), candidates);
      this.restored = true;
    }
    const tuned = await this.matmuls.tune(candidates);
    if (tuned > 0) await this.tuningStore?.save(this.matmuls.tuned());
    if (settled + tuned === 0) return false;
    for (const plan of this.plans) plan.rerecord();
    return true;
  }
}
