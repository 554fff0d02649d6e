import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import { type Op, releaseOps } from '../gpu/ops';
import { type AdamWSettings, PARTIALS_PER_BUFFER } from '../kernels/adamw';
import type { EngineKernels } from './kernels';

/** A trainable tensor (or the LoRA adapter's flat vector) and its gradient, n floats each. */
export interface ParamGroup {
  param: GPUBuffer;
  grad: GPUBuffer;
  n: number;
}

export interface OptimizerSettings extends AdamWSettings {
  /** Global gradient-norm clipping threshold; 0 or less turns clipping off. */
  maxGradNorm: number;
}

/**
 * AdamW over a fixed set of parameter groups: fp32 moments beside each, global-norm clipping across all of
 * them, recorded once as ops. Each step only rewrites the small hyperparameter uniform.
 */
export class AdamW {
  readonly ops: Op[] = [];
  private readonly clip: GPUBuffer;
  private readonly hyper: GPUBuffer;
  private readonly owned: GPUBuffer[] = [];
  private stepCount = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly kernels: EngineKernels,
    groups: ParamGroup[],
    private settings: OptimizerSettings,
  ) {
    const k = kernels.adamw;
    const partial = this.own(
      createStorageBuffer(device, groups.length * PARTIALS_PER_BUFFER * 4, 'grad norm partials'),
    );
    this.clip = this.own(createStorageBuffer(device, 8, 'grad clip'));
    this.hyper = this.own(k.createHyper());
    groups.forEach((g, slot) => {
      this.ops.push(k.sumSquaresOp(g.grad, g.n, partial, slot));
    });
    this.ops.push(k.clipOp(partial, groups.length, this.clip, settings.maxGradNorm));
    for (const g of groups) {
      const m = this.own(createStorageBuffer(device, g.n * 4, 'adam m'));
      const v = this.own(createStorageBuffer(device, g.n * 4, 'adam v'));
      this.ops.push(k.stepOp(g.param, g.grad, m, v, this.clip, this.hyper, g.n));
    }
  }

  private own(buffer: GPUBuffer): GPUBuffer {
    this.owned.push(buffer);
    return buffer;
  }

  /** Readies the next step's hyperparameters (call before submitting `ops`); `lr` overrides for schedules. */
  prepareStep(lr = this.settings.lr): void {
    this.stepCount++;
    this.kernels.adamw.writeHyper(this.hyper, { ...this.settings, lr }, this.stepCount);
  }

  get steps(): number {
    return this.stepCount;
  }

  /** The global gradient norm before clipping, as of the last step. */
  async readGradNorm(): Promise<number> {
    return (await readFloat32(this.device, this.clip, 8))[1];
  }

  /** Bytes of optimizer state (moments and scratch). */
  get byteLength(): number {
    return this.owned.reduce((total, b) => total + b.size, 0);
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    releaseOps(this.ops);
  }
}

/** Every base weight with its full-parameter gradient (both keyed by checkpoint key, chunk by chunk). */
export function weightParamGroups(weights: Map<string, GPUBuffer[]>, grads: Map<string, GPUBuffer[]>): ParamGroup[] {
  return [...weights].flatMap(([key, buffers]) =>
    buffers.map((param, i) => {
      const grad = grads.get(key)?.[i];
      if (!grad) throw new Error(`no gradient buffer for ${key}`);
      return { param, grad, n: param.size / 4 };
    }),
  );
}
