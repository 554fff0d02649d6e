import { randomUniform } from '../../../core/random';
import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import { type Op, releaseOps } from '../gpu/ops';
import type { EngineKernels } from './kernels';
import type { ParamGroup } from './optimizer';
import type { TransformerStep } from './transformer';

/**
 * A reward model's scalar head on a 'hidden' training step: Hugging Face's `score` layer (d → 1, no bias) read at
 * one position per row of the batch, the row's last real token, as LlamaForSequenceClassification reads it. The
 * objective sets the positions, runs the step's forward then `forwardOps`, reads the scores, writes d(loss)/d(score)
 * per row, and runs `backwardOps` (which fill the step's finalHiddenGrad) before the step's backward.
 */
export class RewardHead {
  /** [d] fp32, trained by the optimizer as its own parameter group. */
  readonly weight: GPUBuffer;
  readonly grad: GPUBuffer;
  readonly forwardOps: Op[];
  readonly backwardOps: Op[];
  readonly zeroGradOps: Op[];
  private readonly rows: GPUBuffer;
  private readonly scores: GPUBuffer;
  private readonly scoreGrads: GPUBuffer;
  private readonly d: number;
  private readonly batch: number;

  constructor(
    private readonly device: GPUDevice,
    kernels: EngineKernels,
    step: TransformerStep,
    initial: Float32Array<ArrayBuffer>,
  ) {
    if (step.output !== 'hidden') throw new Error("a reward head needs a step with 'hidden' output");
    this.d = initial.length;
    this.batch = step.shape.batch;
    this.weight = createStorageBuffer(device, this.d * 4, 'score weight');
    device.queue.writeBuffer(this.weight, 0, initial);
    this.grad = createStorageBuffer(device, this.d * 4, 'score grad');
    this.rows = createStorageBuffer(device, this.batch * 4, 'scored positions');
    this.scores = createStorageBuffer(device, this.batch * 4, 'scores');
    this.scoreGrads = createStorageBuffer(device, this.batch * 4, 'd scores');
    const k = kernels.scoreHead;
    const head = { x: step.finalHidden, w: this.weight, rows: this.rows, batch: this.batch, d: this.d };
    this.forwardOps = [k.forwardOp({ ...head, score: this.scores })];
    this.backwardOps = [
      k.inputGradOp({ ...head, g: this.scoreGrads, dx: step.finalHiddenGrad, n: step.tokens }),
      k.weightGradOp({ ...head, g: this.scoreGrads, dw: this.grad }),
    ];
    this.zeroGradOps = [{ kind: 'clear', buffer: this.grad }];
  }

  /** nn.Linear's default initialization, uniform in ±1/√d, seeded. */
  static initialWeight(d: number, seed: number): Float32Array<ArrayBuffer> {
    const bound = 1 / Math.sqrt(d);
    return randomUniform(d, seed ^ 0x5c0e, -bound, bound);
  }

  get paramGroup(): ParamGroup {
    return { param: this.weight, grad: this.grad, n: this.d };
  }

  /** The position (row * seq + t, into the step's tokens) each batch row is scored at. */
  setPositions(positions: readonly number[]): void {
    if (positions.length !== this.batch) throw new Error(`a reward head scores ${this.batch} rows`);
    this.device.queue.writeBuffer(this.rows, 0, Uint32Array.from(positions));
  }

  /** Each row's score, after the step's forward and this head's forwardOps ran. */
  async readScores(): Promise<Float32Array> {
    return readFloat32(this.device, this.scores, this.batch * 4);
  }

  /** d(loss)/d(score) per row, for the next run of backwardOps. */
  setScoreGrads(grads: Float32Array<ArrayBuffer>): void {
    if (grads.length !== this.batch) throw new Error(`a reward head takes ${this.batch} score gradients`);
    this.device.queue.writeBuffer(this.scoreGrads, 0, grads);
  }

  async readWeight(): Promise<Float32Array> {
    return readFloat32(this.device, this.weight, this.d * 4);
  }

  destroy(): void {
    for (const b of [this.weight, this.grad, this.rows, this.scores, this.scoreGrads]) b.destroy();
    releaseOps([...this.forwardOps, ...this.backwardOps]);
  }
}
