/**
 * Next-token training (continued pretraining and supervised fine-tuning) on the engine: batches drawn from a
 * seeded order of the training sequences, gradient accumulation to one token-mean step, a learning-rate
 * schedule, clipped AdamW, validation loss, and checkpoints that resume to the same adapter bit for bit.
 *
 * Reproducibility: the data order of epoch e is a permutation seeded by (seed, e) and each micro-batch's dropout
 * masks are seeded by (seed, micro-batch number), so a checkpoint needs only the step, the position in the data
 * stream and the optimizer's state to continue exactly where the run was.
 */

import type { LoadedAdapter } from '../../../core/checkpoint';
import { type Batch, countLossTargets, padBatch } from '../../../core/dataset/batches';
import type { TokenizedExample } from '../../../core/dataset/render';
import { mulberry32 } from '../../../core/random';
import type { MetricRecord, StepMetrics } from '../../../core/training/metrics';
import { learningRate, warmupSteps } from '../../../core/training/schedule';
import type { TrainSettings } from '../../../core/training/settings';
import { readFloat32 } from '../gpu/buffers';
import { type Op, submitOps } from '../gpu/ops';
import type { EngineKernels } from '../model/kernels';
import { adapterInit, GpuLora, loraSettingsFor, peftInit } from '../model/lora';
import { AdamW, type OptimizerState, type ParamGroup, weightParamGroups } from '../model/optimizer';
import { TransformerStep } from '../model/transformer';
import type { GpuWeights } from '../model/weights';

export interface TrainerData<T = TokenizedExample> {
  train: T[];
  validation: T[];
  /** Fills short sequences; never labelled, so any id works (the tokenizer's pad or EOS token reads best). */
  padId: number;
}

/** What an objective sees of the optimizer step its micro-batch belongs to. */
export interface StepContext {
  device: GPUDevice;
  /** Every micro-batch of the step, padded as the step runs them. */
  batches: Batch[];
  /** Items (sequences, pairs, or prompts) in the whole step. */
  items: number;
  /** Micro-batches in the step. */
  microBatches: number;
  /** This micro-batch's own seed (its dropout masks use it too), for anything else it draws. */
  seed: number;
}

/** What the trainer hands an objective's `attach`: everything the step itself is built from. */
export interface AttachContext {
  kernels: EngineKernels;
  weights: GpuWeights;
  /** The adapter being trained; null in full-parameter training. */
  lora: GpuLora | null;
}

/** Metrics an objective adds to its step's (reinforcement learning's rewards and KL). */
export type ObjectiveMetrics = Pick<StepMetrics, 'reward' | 'rewardStd' | 'kl' | 'completionLength'> & {
  /** Tokens through forward and backward, when the batch's rows are not what the objective trained on. */
  tokens?: number;
};

/**
 * What a method computes on a micro-batch. The trainer draws items (a sequence, or a pair of them) from its seeded
 * stream, lays their rows out as one padded [batchSize * rowsPerItem, seq] batch, sets the dropout seed, and asks
 * the objective to accumulate that micro-batch's gradients.
 */
export interface Objective<T> {
  /** Rows of the batch each item fills. */
  readonly rowsPerItem: number;
  /** What the step ends in: the LM head's next-token loss (default), or hidden states for the objective's head. */
  readonly output?: TransformerStep['output'];
  rows(item: T): TokenizedExample[];
  /** The longest row an item can become (default: its rows' longest); sizes the step. */
  rowLength?(item: T): number;
  /**
   * Builds what the objective needs on the step: a head it trains beside the adapter (a reward model's score
   * head), or work buffers of its own (returns null then, and frees them in `destroy`).
   */
  attach?(step: TransformerStep, context: AttachContext): TrainedHead | null;
  /** Work before the first step (DPO: the reference model's log-probabilities, while the adapter is still zero). */
  prepare?(
    step: TransformerStep,
    device: GPUDevice,
    data: TrainerData<T>,
    batchOf: (items: T[]) => Batch,
  ): Promise<void>;
  /**
   * Forward and backward of one micro-batch, scaled so the micro-batches of a step add up to its loss; returns its
   * share of that loss.
   */
  accumulate(step: TransformerStep, batch: Batch, items: T[], context: StepContext): Promise<number>;
  /** What the objective measured over the step's micro-batches; called once per step, after them. */
  takeStepMetrics?(): ObjectiveMetrics;
  /**
   * A validation batch: what its measures are averaged over (tokens, pairs or prompts), the loss summed over it,
   * for pairs how many the model ranks right, for prompts the reward summed over them.
   */
  evaluate(
    step: TransformerStep,
    batch: Batch,
    items: T[],
    device: GPUDevice,
  ): Promise<{ count: number; sum?: number; correct?: number; reward?: number }>;
  destroy?(): void;
}

/** Parameters an objective trains besides the adapter: they join the optimizer and are cleared with the gradients. */
export interface TrainedHead {
  readonly paramGroup: ParamGroup;
  readonly zeroGradOps: Op[];
  /** The head's weights, to save with the adapter. */
  readWeight(): Promise<Float32Array>;
  destroy(): void;
}

export interface Validation {
  /** Mean loss per token, or per pair; null where the method has none to validate (policy optimization). */
  loss: number | null;
  /** Pairs ranked right, of the validation pairs (preference methods); null otherwise. */
  accuracy: number | null;
  /** Mean reward of a completion sampled for each validation prompt (policy optimization); null otherwise. */
  reward: number | null;
}

/** Next-token loss (continued pretraining, supervised fine-tuning): the token mean over the whole step. */
export const nextToken: Objective<TokenizedExample> = {
  rowsPerItem: 1,
  rows: (item) => [item],
  async accumulate(step, batch, _items, context) {
    // A micro-batch whose sequences were all cut before their answers adds nothing (and cannot be run).
    if (countLossTargets(batch.labels) === 0) return 0;
    // Every counted token of the step weighs the same, whichever micro-batch it is in.
    const counted = context.batches.reduce((n, b) => n + countLossTargets(b.labels), 0);
    step.setBatch(batch.tokens, batch.labels, counted);
    submitOps(context.device, [...step.forwardOps, ...step.backwardOps]);
    return step.readLoss();
  },
  async evaluate(step, batch, _items, device) {
    const n = countLossTargets(batch.labels);
    if (n === 0) return { sum: 0, count: 0 };
    step.setBatch(batch.tokens, batch.labels);
    submitOps(device, step.forwardOps);
    return { sum: (await step.readLoss()) * n, count: n };
  },
};

export type { MetricRecord, StepMetrics };

/** What a resumed run may change: its length, when it validates and checkpoints, and recomputing (no number). */
export const CHANGEABLE_ON_RESUME: readonly (keyof TrainSettings)[] = [
  'epochs',
  'maxSteps',
  'evalEvery',
  'checkpointEvery',
  'checkpointMinutes',
  'recompute',
];

/** The settings of `now` (those it has) that differ from `before` where a resumed run may not change them. */
export function unresumableChanges(before: TrainSettings, now: Partial<TrainSettings>): (keyof TrainSettings)[] {
  return (Object.keys(now) as (keyof TrainSettings)[]).filter(
    (key) => !CHANGEABLE_ON_RESUME.includes(key) && JSON.stringify(before[key]) !== JSON.stringify(now[key]),
  );
}

export const evalRecord = (step: number, v: Validation): MetricRecord => ({
  type: 'eval',
  step,
  validationLoss: v.loss,
  validationAccuracy: v.accuracy,
  validationReward: v.reward,
});

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

export class Trainer<T = TokenizedExample> {
  readonly totalSteps: number;
  readonly warmup: number;
  readonly lora: GpuLora | null;
  /** The objective's own trained head (a reward model's score head), when it has one. */
  readonly head: TrainedHead | null;
  private readonly step: TransformerStep;
  private readonly optimizer: AdamW;
  private stepsDone = 0;
  private position = 0;
  private order: { epoch: number; indices: Uint32Array } | null = null;

  constructor(
    private readonly device: GPUDevice,
    private readonly kernels: EngineKernels,
    weights: GpuWeights,
    readonly settings: TrainSettings,
    private readonly data: TrainerData<T>,
    private readonly objective: Objective<T> = nextToken as unknown as Objective<T>,
    /** An adapter to continue from, of the settings' LoRA shape; PEFT's fresh initialization when absent. */
    initial?: LoadedAdapter,
  ) {
    if (data.train.length === 0) throw new Error('there is nothing to train on');
    const s = settings;
    this.totalSteps = plannedSteps(s, data.train.length);
    this.warmup = warmupSteps(s.warmup, this.totalSteps, initial !== undefined);
    // The step's shape: no longer than the longest sequence, so short conversations do not pay for padding.
    const rowLength = (x: T) => objective.rowLength?.(x) ?? Math.max(...objective.rows(x).map((r) => r.ids.length));
    const longest = Math.max(...[...data.train, ...data.validation].map(rowLength));
    const seq = Math.max(2, Math.min(s.seqLen, longest));
    const config = weights.config;
    this.lora = s.full
      ? null
      : GpuLora.create(
          device,
          config,
          loraSettingsFor(config, s, s.loraDropout),
          initial ? adapterInit(initial) : peftInit(s.seed),
        );
    const rows = s.batchSize * objective.rowsPerItem;
    this.step = new TransformerStep(
      device,
      kernels,
      weights,
      this.lora,
      { batch: rows, seq },
      { full: s.full, output: objective.output, recompute: s.recompute },
    );
    this.head = objective.attach?.(this.step, { kernels, weights, lora: this.lora }) ?? null;
    const groups = this.lora
      ? [{ param: this.lora.params, grad: this.lora.grads, n: this.lora.length }]
      : weightParamGroups(weights.byKey, this.step.weightGrads ?? new Map());
    if (this.head) groups.push(this.head.paramGroup);
    this.optimizer = new AdamW(device, kernels, groups, {
      lr: s.lr,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: s.weightDecay,
      maxGradNorm: s.maxGradNorm,
    });
  }

  /**
   * Work before the first step (call once, before `restore`): on GPUs, the matmul products of every step and
   * decoder made so far (this one's, the objective's, a reward model's) timed, and those recorded again with the
   * fastest variant of each; then the objective's own work.
   */
  async prepare(): Promise<void> {
    await this.kernels.tuneMatmuls();
    await this.objective.prepare?.(this.step, this.device, this.data, (items) => this.batchOf(items));
  }

  /** Items' rows as one padded batch of the step's shape; a short list is filled with rows that carry no loss. */
  private batchOf(items: T[]): Batch {
    const rows = items.flatMap((item) => this.objective.rows(item));
    const filler = { ids: rows[0].ids, labels: rows[0].labels.map(() => -100) };
    while (rows.length < this.step.shape.batch) rows.push(filler);
    return padBatch(rows, this.step.shape.seq, this.data.padId);
  }

  /**
   * What the run trains, read back as one vector: the adapter in its flat layout, then the objective's head (a
   * reward model's) when it has one; null in full-parameter training, which has no adapter.
   */
  async readAdapter(): Promise<Float32Array | null> {
    if (!this.lora) return null;
    const lora = await readFloat32(this.device, this.lora.params);
    const head = (await this.head?.readWeight()) ?? new Float32Array(0);
    const params = new Float32Array(lora.length + head.length);
    params.set(lora);
    params.set(head, lora.length);
    return params;
  }

  get stepsCompleted(): number {
    return this.stepsDone;
  }

  get done(): boolean {
    return this.stepsDone >= this.totalSteps;
  }

  /** The training item at a position of the endless, epoch-by-epoch shuffled stream. */
  private itemAt(position: number): T {
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
      Array.from({ length: s.batchSize }, () => this.itemAt(this.position++)),
    );
    const batches = drawn.map((items) => this.batchOf(items));
    const tokens = drawn
      .flat()
      .flatMap((item) => this.objective.rows(item))
      .reduce((n, x) => n + Math.min(x.ids.length, seq), 0);
    const lr = learningRate(s.lr, s.schedule, this.warmup, this.stepsDone, this.totalSteps);
    const step = { device: this.device, batches, items: s.gradAccum * s.batchSize, microBatches: s.gradAccum };
    let loss = 0;
    submitOps(this.device, [...this.step.zeroGradOps, ...(this.head?.zeroGradOps ?? [])]);
    for (let i = 0; i < batches.length; i++) {
      const seed = mix(s.seed, this.stepsDone * s.gradAccum + i);
      this.step.setDropoutSeed(seed);
      loss += await this.objective.accumulate(this.step, batches[i], drawn[i], { ...step, seed });
    }
    const extra = this.objective.takeStepMetrics?.() ?? {};
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
      tokensPerSecond: (extra.tokens ?? tokens) / Math.max(seconds, 1e-9),
      ...(extra.reward !== undefined && {
        reward: extra.reward,
        rewardStd: extra.rewardStd,
        kl: extra.kl,
        completionLength: extra.completionLength,
      }),
    };
  }

  /** The validation loss and accuracy, dropout off; null when there is nothing to validate. */
  async evaluate(): Promise<Validation | null> {
    const items = this.data.validation;
    if (items.length === 0) return null;
    const { batchSize } = this.settings;
    this.step.setDropoutSeed(null);
    let count = 0;
    // Each measure is summed only if the objective reports it.
    const totals: { sum: number | null; correct: number | null; reward: number | null } = {
      sum: null,
      correct: null,
      reward: null,
    };
    for (let first = 0; first < items.length; first += batchSize) {
      const chunk = items.slice(first, first + batchSize);
      const part = await this.objective.evaluate(this.step, this.batchOf(chunk), chunk, this.device);
      count += part.count;
      for (const key of ['sum', 'correct', 'reward'] as const) {
        const value = part[key];
        if (value !== undefined) totals[key] = (totals[key] ?? 0) + value;
      }
    }
    if (count === 0) return null;
    const mean = (total: number | null) => (total === null ? null : total / count);
    return { loss: mean(totals.sum), accuracy: mean(totals.correct), reward: mean(totals.reward) };
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
   * run's length (epochs, max steps) may differ, to train longer (with a decaying schedule that reshapes the rest
   * of the learning-rate curve), and whether activations are recomputed, which changes no number.
   */
  restore(saved: TrainerCheckpoint): void {
    const changed = unresumableChanges(saved.settings, this.settings);
    if (changed.length > 0) {
      throw new Error(`the checkpoint was made with other settings (${changed.join(', ')}); start a new run instead`);
    }
    this.optimizer.writeState(saved.optimizer);
    this.stepsDone = saved.step;
    this.position = saved.position;
  }

  destroy(): void {
    this.step.destroy();
    this.head?.destroy();
    this.objective.destroy?.();
    this.optimizer.destroy();
    this.lora?.destroy();
  }
}

export interface RunHooks {
  onStep?: (metrics: StepMetrics) => void;
  onEval?: (step: number, validation: Validation) => void;
  onCheckpoint?: (checkpoint: TrainerCheckpoint) => Promise<void>;
  /** Asked before each step: true ends the run there (pause or stop), after a checkpoint. */
  shouldStop?: () => boolean;
}

/**
 * Steps until the run is done or asked to stop: validation every evalEvery steps and at the end, a checkpoint every
 * checkpointEvery steps or checkpointMinutes of training (whichever comes first), when stopped and at the end, so
 * every run can be continued and a reload loses little.
 */
export async function runTraining<T>(trainer: Trainer<T>, hooks: RunHooks = {}): Promise<'finished' | 'stopped'> {
  const { evalEvery, checkpointEvery, checkpointMinutes = 0 } = trainer.settings;
  let checkpointed = -1;
  let checkpointedAt = performance.now();
  const checkpoint = async () => {
    if (!hooks.onCheckpoint || checkpointed === trainer.stepsCompleted) return;
    await hooks.onCheckpoint(await trainer.checkpoint());
    checkpointed = trainer.stepsCompleted;
    checkpointedAt = performance.now();
  };
  const due = (step: number) =>
    (checkpointEvery > 0 && step % checkpointEvery === 0) ||
    (checkpointMinutes > 0 && performance.now() - checkpointedAt >= checkpointMinutes * 60_000);
  const evaluate = async (step: number) => {
    const validation = await trainer.evaluate();
    if (validation !== null) hooks.onEval?.(step, validation);
  };
  while (!trainer.done) {
    if (hooks.shouldStop?.()) {
      await checkpoint();
      return 'stopped';
    }
    const metrics = await trainer.trainStep();
    hooks.onStep?.(metrics);
    if (evalEvery > 0 && metrics.step % evalEvery === 0 && !trainer.done) await evaluate(metrics.step);
    if (due(metrics.step) && !trainer.done) await checkpoint();
  }
  await evaluate(trainer.stepsCompleted);
  await checkpoint();
  return 'finished';
}
