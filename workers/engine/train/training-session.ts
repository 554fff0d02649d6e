/**
 * A training run inside the engine worker: prepared from the dataset files with the same code as `hone train`,
 * stepped by the trainer, paused, resumed and stopped between steps, checkpointed into a RunStore so a reload,
 * a crash or a lost GPU device can continue from the last checkpoint. Events stream to the page as they happen.
 */

import { type LoadedAdapter, loadAdapter } from '../../../core/checkpoint';
import type { DatasetFile } from '../../../core/dataset/read-records';
import { expandZip } from '../../../core/export/unzip-folder';
import type { ModelConfig } from '../../../core/model-config';
import type { ModelTokenizer } from '../../../core/tokenizer';
import { type AdapterShape, adapterShape } from '../../../core/training/continue-adapter';
import { type DataChoice, type PreparedRun, prepareRun } from '../../../core/training/prepare';
import { rlSequenceLength } from '../../../core/training/sequences';
import type { TrainSettings } from '../../../core/training/settings';
import type { EngineKernels } from '../model/kernels';
import type { GpuWeights } from '../model/weights';
import { filesReader } from '../model-loader';
import { parseCheckpoint, serializeCheckpoint } from './checkpoint-files';
import { createTrainer } from './create-trainer';
import { type RewardChoice, rewardFromChoice } from './reward-choice';
import { evalRecord, type MetricRecord, runTraining, type Trainer, type TrainerCheckpoint } from './trainer';

export type { MetricRecord };

export interface TrainRequest {
  /** The model the run belongs to (its label), so a saved run is resumed on the same model. */
  model: string;
  settings: TrainSettings;
  data: DataChoice;
  /** Policy optimization's reward. */
  reward?: RewardChoice;
  /** An adapter folder (or its zip) the run continues, in its own LoRA shape. */
  initialAdapter?: { name: string; files: { path: string; file: Blob }[] };
}

export type TrainEvent =
  | {
      type: 'prepared';
      format: string;
      /** What the run trains on: sequences, preference pairs, or prompts (RL). */
      unit: PreparedRun['data']['kind'];
      records: number;
      skipped: number;
      train: number;
      validation: number;
      dropped: number;
      totalSteps: number;
      /** Steps already done (a resumed run). */
      step: number;
    }
  | { type: 'metric'; metric: MetricRecord }
  | { type: 'checkpoint'; step: number }
  | { type: 'paused'; step: number }
  | { type: 'finished'; step: number }
  | { type: 'stopped'; step: number }
  | { type: 'failed'; message: string; step: number };

/**
 * A run's adapter at one step: its flat LoRA vector, laid out as `GpuLora` lays it out for the run's settings,
 * followed by what else the run trains (a reward model's score head).
 */
export interface AdapterSnapshot {
  step: number;
  params: Float32Array;
}

/**
 * Where a run is kept between page loads: its request and a copy of its data, its latest resumable checkpoint and
 * metrics, and its adapter at each checkpoint (the newest `KEPT_ADAPTERS`), which outlive the run's end so any of
 * them can be compared, until the next run begins.
 */
export interface RunStore {
  begin(request: TrainRequest, files: DatasetFile[]): Promise<void>;
  saveCheckpoint(
    files: Record<string, string | Uint8Array>,
    metrics: MetricRecord[],
    adapter: AdapterSnapshot | null,
  ): Promise<void>;
  /** Keeps the adapter at a step that has no resumable checkpoint (the end of a run). */
  saveAdapter(adapter: AdapterSnapshot): Promise<void>;
  /** The run's metrics so far, kept for the runs list (a failed run's too). */
  saveMetrics(metrics: MetricRecord[]): Promise<void>;
  /** The run can no longer be resumed (it finished, or was stopped); its adapters and metrics stay. */
  end(metrics: MetricRecord[]): Promise<void>;
  /** The run, when it can be resumed. */
  load(): Promise<SavedRun | null>;
  /** A kept run's request, the steps of its kept adapters (oldest first) and its metrics; null when it is gone. */
  keptRun(id: string): Promise<{ request: TrainRequest; steps: number[]; metrics: MetricRecord[] } | null>;
  loadAdapter(id: string, step: number): Promise<Float32Array | null>;
  /** Every kept run, newest first. */
  runs(): Promise<RunListing[]>;
  clear(): Promise<void>;
}

/** A kept run as the runs list shows it: what it was, on which data, how it went. */
export interface RunListing {
  id: string;
  /** When it began (ms since the epoch). */
  started: number;
  model: string;
  settings: TrainSettings;
  files: string[];
  /** A short hash of the dataset files' bytes. */
  fingerprint: string;
  /** Finished or stopped (not resumable). */
  ended: boolean;
  metrics: MetricRecord[];
  /** Steps with a kept adapter, oldest first. */
  steps: number[];
}

/** How many of a run's checkpoint adapters are kept for comparing (the newest). */
export const KEPT_ADAPTERS = 10;

export interface SavedRun {
  request: TrainRequest;
  files: DatasetFile[];
  checkpoint: { json: string; tensors: Uint8Array };
  metrics: MetricRecord[];
}

export interface ModelOnGpu {
  label: string;
  config: ModelConfig;
  tokenizer: ModelTokenizer;
  weights: GpuWeights;
}

/**
 * The adapter in a checkpoint: the optimizer's groups are the LoRA vector, then a head when the objective has one;
 * none in full-parameter runs.
 */
function adapterOf(c: TrainerCheckpoint): AdapterSnapshot | null {
  if (c.settings.full) return null;
  const groups = c.optimizer.groups.map((g) => g.param);
  const params = new Float32Array(groups.reduce((n, g) => n + g.length, 0));
  let at = 0;
  for (const g of groups) {
    params.set(g, at);
    at += g.length;
  }
  return { step: c.step, params };
}

/** Why the run cannot start, every reason at once. */
export class RunRefusedError extends Error {
  constructor(readonly problems: string[]) {
    super(`The run cannot start:\n${problems.map((p) => `• ${p}`).join('\n')}`);
    this.name = 'RunRefusedError';
  }
}

export class TrainingSession {
  private trainer: Trainer<unknown> | null = null;
  private metrics: MetricRecord[] = [];
  private pauseRequested = false;
  private stopRequested = false;
  private running = false;
  private prepared: Extract<TrainEvent, { type: 'prepared' }> | null = null;
  private fileNames: string[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly kernels: EngineKernels,
    private readonly model: ModelOnGpu,
    private readonly store: RunStore | null,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** The trained adapter's trainer (for comparing and exporting), once a run has stepped. */
  get current(): Trainer<unknown> | null {
    return this.trainer;
  }

  /** The run's metrics so far. */
  get recorded(): readonly MetricRecord[] {
    return this.metrics;
  }

  /** The names of the run's dataset files. */
  get files(): string[] {
    return this.fileNames;
  }

  /** What the run trains on, as its `prepared` event said; null before it is prepared. */
  get data(): Extract<TrainEvent, { type: 'prepared' }> | null {
    return this.prepared;
  }

  /** Prepares the data and the trainer; with `saved`, restores its checkpoint instead of starting fresh. */
  async start(
    request: TrainRequest,
    files: DatasetFile[],
    emit: (e: TrainEvent) => void,
    saved?: SavedRun,
  ): Promise<void> {
    if (this.running) throw new Error('a run is already training');
    if (request.model !== this.model.label) {
      throw new Error(`the run was made on ${request.model}; ${this.model.label} is loaded`);
    }
    const prepared = await prepareRun(files, request.data, this.model.tokenizer, this.model.config, request.settings);
    this.fileNames = files.map((f) => f.name);
    const problems = [...prepared.problems];
    const initial =
      request.initialAdapter && (await this.continued(request.initialAdapter, request.settings, problems));
    if (prepared.data.kind === 'prompts' && !request.reward) {
      problems.push('policy optimization needs a reward: write a rule or pick a reward model');
    }
    if (problems.length > 0) throw new RunRefusedError(problems);
    this.trainer?.destroy();
    this.trainer = null;
    const { settings } = request;
    const engine = { device: this.device, kernels: this.kernels, weights: this.model.weights };
    const reward =
      prepared.data.kind === 'prompts' && request.reward
        ? await rewardFromChoice(
            request.reward,
            engine,
            {
              rows: settings.batchSize * settings.groupSize,
              seq: rlSequenceLength(prepared.data, settings.seqLen, settings.maxCompletion),
            },
            this.model.tokenizer,
          )
        : undefined;
    try {
      this.trainer = await createTrainer(engine, {
        settings,
        data: prepared.data,
        tokenizer: this.model.tokenizer,
        reward,
        initial: initial ?? undefined,
      });
    } catch (error) {
      reward?.destroy();
      throw error;
    }
    this.metrics = [];
    if (saved) {
      this.trainer.restore(parseCheckpoint(saved.checkpoint.json, saved.checkpoint.tensors, 'the saved run'));
      this.metrics = saved.metrics.filter((m) => m.step <= (this.trainer as Trainer<unknown>).stepsCompleted);
    } else {
      await this.store?.begin(request, files);
    }
    const sequences = prepared.data;
    this.prepared = {
      type: 'prepared',
      format: prepared.format,
      unit: sequences.kind,
      records: prepared.records,
      skipped: prepared.skipped,
      train: sequences.train.length,
      validation: sequences.validation.length,
      dropped: sequences.dropped,
      totalSteps: this.trainer.totalSteps,
      step: this.trainer.stepsCompleted,
    };
    emit(this.prepared);
    for (const metric of this.metrics) emit({ type: 'metric', metric });
    await this.continue(emit);
  }

  /**
   * The adapter a run continues, checked against the model and the run: its LoRA shape must be the settings' (the
   * Train step takes it over when the adapter is picked). What is wrong is added to `problems`.
   */
  private async continued(
    picked: NonNullable<TrainRequest['initialAdapter']>,
    settings: TrainSettings,
    problems: string[],
  ): Promise<LoadedAdapter | null> {
    if (settings.full) {
      problems.push('continuing an adapter trains LoRA: turn off training every weight');
      return null;
    }
    const task = settings.method === 'rm' ? 'SEQ_CLS' : 'CAUSAL_LM';
    const adapter = await loadAdapter(filesReader(await expandZip(picked.files)), picked.name, this.model.config, task);
    const shape = adapterShape(adapter.config, picked.name);
    for (const key of Object.keys(shape) as (keyof AdapterShape)[]) {
      if (JSON.stringify(settings[key]) !== JSON.stringify(shape[key])) {
        problems.push(
          `${picked.name} has ${key} ${shape[key]}, the settings ${settings[key]}: continue it in its shape`,
        );
      }
    }
    return adapter;
  }

  /** Steps until the run finishes, is paused or stopped, or fails. */
  async continue(emit: (e: TrainEvent) => void): Promise<void> {
    const trainer = this.trainer;
    if (!trainer || this.running) return;
    this.running = true;
    this.pauseRequested = false;
    this.stopRequested = false;
    const record = (metric: MetricRecord) => {
      this.metrics.push(metric);
      emit({ type: 'metric', metric });
    };
    try {
      const outcome = await runTraining(trainer, {
        onStep: (m) => record({ type: 'train', ...m }),
        onEval: (step, validation) => record(evalRecord(step, validation)),
        onCheckpoint: async (c) => {
          await this.store?.saveCheckpoint(serializeCheckpoint(c), this.metrics, adapterOf(c));
          emit({ type: 'checkpoint', step: c.step });
        },
        shouldStop: () => this.pauseRequested || this.stopRequested,
      });
      const step = trainer.stepsCompleted;
      if (outcome === 'finished') {
        const params = await trainer.readAdapter();
        if (params) await this.store?.saveAdapter({ step, params });
      }
      if (outcome === 'finished' || this.stopRequested) await this.store?.end(this.metrics);
      if (outcome === 'finished') emit({ type: 'finished', step });
      else emit({ type: this.stopRequested ? 'stopped' : 'paused', step });
    } catch (error) {
      await this.store?.saveMetrics(this.metrics).catch(() => {});
      emit({ type: 'failed', message: (error as Error).message, step: trainer.stepsCompleted });
    } finally {
      this.running = false;
    }
  }

  /** Ends the run after the current step, checkpointed, to be continued with `continue`. */
  pause(): void {
    this.pauseRequested = true;
  }

  /**
   * Ends the run after the current step (or now, when paused); the adapter so far is kept for comparing and
   * exporting, and the saved run can no longer be resumed.
   */
  async stop(): Promise<void> {
    if (this.running) this.stopRequested = true;
    else await this.store?.end(this.metrics);
  }

  destroy(): void {
    this.trainer?.destroy();
    this.trainer = null;
  }
}
