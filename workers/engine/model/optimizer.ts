import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import { type Op, releaseOps } from '../gpu/ops';
import { type AdamWSettings, PARTIALS_PER_BUFFER } from '../kernels/adamw';
import type { EngineKernels } from './kernels';

export interface OptimizerState {
  steps: number;
  groups: { param: Float32Array<ArrayBuffer>; m: Float32Array<ArrayBuffer>; v: Float32Array<ArrayBuffer> }[];
}

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
  /** Each group's buffers, for saving and restoring the whole state. */
  private readonly state: { param: GPUBuffer; m: GPUBuffer; v: GPUBuffer; n: number }[] = [];
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
      this.ops.push(k.sumSquaresOp({ grad: g.grad, n: g.n, partial, slot }));
    });
    this.ops.push(k.clipOp({ partial, slots: groups.length, clip: this.clip, maxNorm: settings.maxGradNorm }));
    for (const g of groups) {
      const m = this.own(createStorageBuffer(device, g.n * 4, 'adam m'));
      const v = this.own(createStorageBuffer(device, g.n * 4, 'adam v'));
      this.ops.push(k.stepOp({ param: g.param, grad: g.grad, m, v, clip: this.clip, hyper: this.hyper, n: g.n }));
      this.state.push({ param: g.param, m, v, n: g.n });
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

  /** Everything a resumed run needs: each group's parameters and moments, and the step count (bias correction). */
  async readState(): Promise<OptimizerState> {
    const groups = [];
    for (const g of this.state) {
      groups.push({
        param: await readFloat32(this.device, g.param, g.n * 4),
        m: await readFloat32(this.device, g.m, g.n * 4),
        v: await readFloat32(this.device, g.v, g.n * 4),
      });
    }
    return { steps: this.stepCount, groups };
  }

  /** Puts a saved state back: the same groups, in the same order, of the same sizes. */
  writeState(saved: OptimizerState): void {
    if (saved.groups.length !== this.state.length) {
      throw new Error(`the saved optimizer state has ${saved.groups.length} groups; this run has ${this.state.length}`);
    }
    saved.groups.forEach((group, i) => {
      const g = this.state[i];
      for (const part of [group.param, group.m, group.v]) {
        if (part.length !== g.n) throw new Error(`saved optimizer group ${i} has ${part.length} values, not ${g.n}`);
      }
      this.device.queue.writeBuffer(g.param, 0, group.param);
      this.device.queue.writeBuffer(g.m, 0, group.m);
      this.device.queue.writeBuffer(g.v, 0, group.v);
    });
    this.stepCount = saved.steps;
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
