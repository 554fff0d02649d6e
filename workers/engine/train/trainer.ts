/**
 * Next-token training (continued pretraining and supervised fine-tuning) on the engine: batches drawn from a
 * seeded order of the training sequences, gradient accumulation to one token-mean step, a learning-rate
 * schedule, clipped AdamW, validation loss, and checkpoints that resume to the same adapter bit for bit.
 *
 * Reproducibility: the data order of epoch e is a permutation seeded by (seed, e) and each micro-batch's dropout
 * masks are seeded by (seed, micro-batch number), so a checkpoint needs only the step, the position in the data
 * stream and the optimizer's state to continue exactly where the run was.
 */
import { countLossTargets, padBatch } from '../../../core/dataset/batches';
import type { TokenizedExample } from '../../../core/dataset/render';
import { mulberry32 } from '../../../core/random';
import { learningRate, warmupSteps } from '../../../core/training/schedule';
import type { TrainSettings } from '../../../core/training/settings';
import { type Op, submitOps } from '../gpu/ops';
import type { EngineKernels } from '../model/kernels';
import { everyLayer, GpuLora, peftInit } from '../model/lora';
import { AdamW, type OptimizerState, weightParamGroups } from '../model/optimizer';
import { TransformerStep } from '../model/transformer';
import type { GpuWeights } from '../model/weights';

export interface TrainerData {
  train: TokenizedExample[];
  validation: TokenizedExample[];
  /** Fills short sequences; never labelled, so any id works (the tokenizer's pad or EOS token reads best). */
  padId: number;
}

export interface StepMetrics {
  step: number;
  totalSteps: number;
  /** Epochs done, fractional. */
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens (padding excluded) through forward and backward per second, over this step. */
  tokensPerSecond: number;
}

/** What resuming needs; plain arrays and numbers, so it can be stored anywhere (IndexedDB, a file). */
export interface TrainerCheckpoint {
  /** The settings of the run, which the resumed run must share. */
  settings: TrainSettings;
  step: number;
  /** Sequences consumed from the seeded data stream. */
  position: number;
  optimizer: OptimizerState;
}

export class TrainingDivergedError extends Error {
  constructor(step: number, what: string) {
    super(`training diverged at step ${step}: ${what}; the run stopped, and its last checkpoint is kept`);
    this.name = 'TrainingDivergedError';
  }
}

/** Optimizer steps in the run: max steps, or the epochs' worth of batches. */
export function plannedSteps(settings: TrainSettings, trainSequences: number): number {
  if (settings.maxSteps !== null) return settings.maxSteps;
  const perStep = settings.batchSize * settings.gradAccum;
  return Math.max(1, Math.ceil((settings.epochs * trainSequences) / perStep));
}

/** A seed mixed from two numbers, for per-epoch and per-micro-batch streams. */
function mix(a: number, b: number): number {
  return (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
}

export class Trainer {
  readonly totalSteps: number;
  readonly warmup: number;
  readonly lora: GpuLora | null;
  private readonly step: TransformerStep;
  private readonly optimizer: AdamW;
  private readonly trainOps: Op[];
  private stepsDone = 0;
  private position = 0;
  private order: { epoch: number; indices: Uint32Array } | null = null;

  constructor(
    private readonly device: GPUDevice,
    kernels: EngineKernels,
    weights: GpuWeights,
    readonly settings: TrainSettings,
    private readonly data: TrainerData,
  ) {
    if (data.train.length === 0) throw new Error('there is nothing to train on');
    const s = settings;
    this.totalSteps = plannedSteps(s, data.train.length);
    this.warmup = warmupSteps(s.warmup, this.totalSteps);
    // The step's shape: no longer than the longest sequence, so short conversations do not pay for padding.
    const longest = Math.max(...[...data.train, ...data.validation].map((x) => x.ids.length));
    const seq = Math.max(2, Math.min(s.seqLen, longest));
    const config = weights.config;
    this.lora = s.full
      ? null
      : GpuLora.create(
          device,
          config,
          {
            r: s.loraR,
            loraAlpha: s.loraAlpha,
            useRslora: s.rslora,
            loraDropout: s.loraDropout,
            modules: everyLayer(config, s.targets),
          },
          peftInit(s.seed),
        );
    this.step = new TransformerStep(device, kernels, weights, this.lora, { batch: s.batchSize, seq }, { full: s.full });
    const groups = this.lora
      ? [{ param: this.lora.params, grad: this.lora.grads, n: this.lora.length }]
      : weightParamGroups(weights.byKey, this.step.weightGrads ?? new Map());
    this.optimizer = new AdamW(device, kernels, groups, {
      lr: s.lr,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: s.weightDecay,
      maxGradNorm: s.maxGradNorm,
    });
    this.trainOps = [...this.step.forwardOps, ...this.step.backwardOps];
  }

  get stepsCompleted(): number {
    return this.stepsDone;
  }

  get done(): boolean {
    return this.stepsDone >= this.totalSteps;
  }

  /** The training sequence at a position of the endless, epoch-by-epoch shuffled stream. */
  private sequenceAt(position: number): TokenizedExample {
    const n = this.data.train.length;
    const epoch = Math.floor(position / n);
    if (this.order?.epoch !== epoch) {
      const next = mulberry32(mix(this.settings.seed, epoch));
      const indices = Uint32Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [indices[i], indices[j]] = [indices[j], indices[i]];
      }
      this.order = { epoch, indices };
    }
    return this.data.train[this.order.indices[position % n]];
  }

  /** One optimizer step over gradAccum micro-batches; throws TrainingDivergedError on a NaN or Inf. */
  async trainStep(): Promise<StepMetrics> {
    const s = this.settings;
    const started = performance.now();
    const seq = this.step.shape.seq;
    const drawn = Array.from({ length: s.gradAccum }, () =>
      Array.from({ length: s.batchSize }, () => this.sequenceAt(this.position++)),
    );
    const micro = drawn.map((rows) => padBatch(rows, seq, this.data.padId));
    const tokens = drawn.flat().reduce((n, x) => n + Math.min(x.ids.length, seq), 0);
    const counted = micro.reduce((n, b) => n + countLossTargets(b.labels), 0);
    const lr = learningRate(s.lr, s.schedule, this.warmup, this.stepsDone, this.totalSteps);
    let loss = 0;
    submitOps(this.device, this.step.zeroGradOps);
    for (let i = 0; i < micro.length; i++) {
      const batch = micro[i];
      // A micro-batch whose sequences were all cut before their answers adds nothing (and cannot be run).
      if (countLossTargets(batch.labels) === 0) continue;
      this.step.setBatch(batch.tokens, batch.labels, counted);
      this.step.setDropoutSeed(mix(s.seed, this.stepsDone * s.gradAccum + i));
      submitOps(this.device, this.trainOps);
      loss += await this.step.readLoss();
    }
    if (!Number.isFinite(loss)) throw new TrainingDivergedError(this.stepsDone + 1, `the loss is ${loss}`);
    this.optimizer.prepareStep(lr);
    submitOps(this.device, this.optimizer.ops);
    const gradNorm = await this.optimizer.readGradNorm();
    if (!Number.isFinite(gradNorm)) {
      throw new TrainingDivergedError(this.stepsDone + 1, `the gradient norm is ${gradNorm}`);
    }
    this.stepsDone++;
    const seconds = (performance.now() - started) / 1000;
    return {
      step: this.stepsDone,
      totalSteps: this.totalSteps,
      epoch: this.position / this.data.train.length,
      loss,
      lr,
      gradNorm,
      tokensPerSecond: tokens / Math.max(seconds, 1e-9),
    };
  }

  /** The token-mean loss over the validation sequences, dropout off; null when there are none. */
  async evaluate(): Promise<number | null> {
    const sequences = this.data.validation;
    if (sequences.length === 0) return null;
    const { batchSize } = this.settings;
    this.step.setDropoutSeed(null);
    let sum = 0;
    let count = 0;
    for (let first = 0; first < sequences.length; first += batchSize) {
      const rows = sequences.slice(first, first + batchSize);
      // A short last batch is filled with copies whose labels are all ignored.
      const filler = { ids: rows[0].ids, labels: rows[0].labels.map(() => -100) };
      while (rows.length < batchSize) rows.push(filler);
      const batch = padBatch(rows, this.step.shape.seq, this.data.padId);
      const n = countLossTargets(batch.labels);
      if (n === 0) continue;
      this.step.setBatch(batch.tokens, batch.labels);
      submitOps(this.device, this.step.forwardOps);
      sum += (await this.step.readLoss()) * n;
      count += n;
    }
    return count === 0 ? null : sum / count;
  }

  async checkpoint(): Promise<TrainerCheckpoint> {
    return {
      settings: this.settings,
      step: this.stepsDone,
      position: this.position,
      optimizer: await this.optimizer.readState(),
    };
  }

  /**
   * Continues a checkpointed run: the same settings and data, then the saved step, position and optimizer. Only the
   * run's length (epochs, max steps) may differ, to train longer; with a decaying schedule that reshapes the rest
   * of the learning-rate curve.
   */
  restore(saved: TrainerCheckpoint): void {
    const lengthOnly: (keyof TrainSettings)[] = ['epochs', 'maxSteps', 'evalEvery', 'checkpointEvery'];
    const changed = (Object.keys(this.settings) as (keyof TrainSettings)[]).filter(
      (key) => !lengthOnly.includes(key) && JSON.stringify(saved.settings[key]) !== JSON.stringify(this.settings[key]),
    );
    if (changed.length > 0) {
      throw new Error(`the checkpoint was made with other settings (${changed.join(', ')}); start a new run instead`);
    }
    this.optimizer.writeState(saved.optimizer);
    this.stepsDone = saved.step;
    this.position = saved.position;
  }

  destroy(): void {
    this.step.destroy();
    this.optimizer.destroy();
    this.lora?.destroy();
  }
}

export interface RunHooks {
  onStep?: (metrics: StepMetrics) => void;
  onEval?: (step: number, validationLoss: number) => void;
  onCheckpoint?: (checkpoint: TrainerCheckpoint) => Promise<void>;
  /** Asked before each step: true ends the run there (pause or stop), after a checkpoint. */
  shouldStop?: () => boolean;
}

/**
 * Steps until the run is done or asked to stop: validation every evalEvery steps and at the end, a checkpoint every
 * checkpointEvery steps and when stopped.
 */
export async function runTraining(trainer: Trainer, hooks: RunHooks = {}): Promise<'finished' | 'stopped'> {
  const { evalEvery, checkpointEvery } = trainer.settings;
  const evaluate = async (step: number) => {
    const loss = await trainer.evaluate();
    if (loss !== null) hooks.onEval?.(step, loss);
  };
  while (!trainer.done) {
    if (hooks.shouldStop?.()) {
      await hooks.onCheckpoint?.(await trainer.checkpoint());
      return 'stopped';
    }
    const metrics = await trainer.trainStep();
    hooks.onStep?.(metrics);
    if (evalEvery > 0 && metrics.step % evalEvery === 0 && !trainer.done) await evaluate(metrics.step);
    if (checkpointEvery > 0 && metrics.step % checkpointEvery === 0 && hooks.onCheckpoint) {
      await hooks.onCheckpoint(await trainer.checkpoint());
    }
  }
  await evaluate(trainer.stepsCompleted);
  return 'finished';
}
