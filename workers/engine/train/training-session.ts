/**
 * A training run inside the engine worker: prepared from the dataset files with the same code as `hone train`,
 * stepped by the trainer, paused, resumed and stopped between steps, checkpointed into a RunStore so a reload,
 * a crash or a lost GPU device can continue from the last checkpoint. Events stream to the page as they happen.
 */

import type { DatasetFile } from '../../../core/dataset/read-records';
import type { PreparedRun } from '../../../core/training/prepare';
import type { TrainSettings } from '../../../core/training/settings';
import type { EvalReport } from '../evaluate';
import type { GpuWeights } from '../model/weights';
import { type BuiltRun, buildRun, type Engine, type ModelOnGpu, type TrainRequest } from './build-run';
import { parseCheckpoint, serializeCheckpoint } from './checkpoint-files';
import { evalRecord, type MetricRecord, runTraining, type Trainer, type TrainerCheckpoint } from './trainer';

export type { MetricRecord, ModelOnGpu, TrainRequest };

export type TrainEvent =
  | {
      type: 'prepared';
      method: TrainSettings['method'];
      format: string;
      /** What the run trains on: sequences, preference pairs, or prompts (RL). */
      unit: PreparedRun['data']['kind'];
      records: number;
      skipped: number;
      train: number;
      validation: number;
      dropped: number;
      totalSteps: number;
      /** Steps of learning-rate warm-up (more than asked when the run continues an adapter). */
      warmup: number;
      /** Steps already done (a resumed run). */
      step: number;
      /** It trains every weight (a copy of them), so it has no adapter: comparing it switches weights. */
      full: boolean;
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
 * Where a run is kept between page loads (or `hone train` runs): its request and a copy of its data, its latest
 * resumable checkpoint and metrics, and its adapter at each checkpoint (the newest `KEPT_ADAPTERS`), which outlive the
 * run's end so any of them can be compared.
 */
export interface RunStore {
  begin(request: TrainRequest, files: DatasetFile[]): Promise<void>;
  /** The current run continues from its checkpoint with these settings (a resumed run may train longer). */
  reopen(settings: TrainSettings): Promise<void>;
  saveCheckpoint(
    files: Record<string, string | Uint8Array>,
    metrics: MetricRecord[],
    adapter: AdapterSnapshot | null,
  ): Promise<void>;
  /** The run's metrics so far, kept for the runs list (a failed run's too). */
  saveMetrics(metrics: MetricRecord[]): Promise<void>;
  /** The run can no longer be resumed (it finished, or was stopped); its adapters and metrics stay. */
  end(metrics: MetricRecord[]): Promise<void>;
  /** The current run with its latest checkpoint (if it made one); null when there is none. */
  load(): Promise<SavedRun | null>;
  /** A kept run's request, the steps of its kept adapters (oldest first) and its metrics; null when it is gone. */
  keptRun(id: string): Promise<{ request: TrainRequest; steps: number[]; metrics: MetricRecord[] } | null>;
  loadAdapter(id: string, step: number): Promise<Float32Array | null>;
  /** Every kept run, newest first. */
  runs(): Promise<RunListing[]>;
  clear(): Promise<void>;
  /** An evaluation of the current run, kept in its folder (the one before it replaced); null for none kept. */
  saveEvaluation(report: EvalReport): Promise<void>;
  evaluation(): Promise<EvalReport | null>;
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
  /** Null when the run stopped before its first checkpoint: it starts again from step 0. */
  checkpoint: { json: string; tensors: Uint8Array } | null;
  metrics: MetricRecord[];
  /** It finished or was stopped: the studio no longer offers it, `hone train --resume` may train it longer. */
  ended: boolean;
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

export class TrainingSession {
  private run: BuiltRun | null = null;
  private metrics: MetricRecord[] = [];
  private pauseRequested = false;
  private stopRequested = false;
  private running = false;
  private prepared: Extract<TrainEvent, { type: 'prepared' }> | null = null;
  private checkpointed = 0;
  private fileNames: string[] = [];

  constructor(
    private readonly engine: Engine,
    private readonly model: ModelOnGpu,
    private readonly store: RunStore | null,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** The trained adapter's trainer (for comparing and exporting), once a run has stepped. */
  get current(): Trainer<unknown> | null {
    return this.run?.trainer ?? null;
  }

  /** The weights the run reads: the loaded model's, or those it trains when it trains every weight. */
  get weights(): GpuWeights | null {
    return this.run?.weights ?? null;
  }

  /** The run's metrics so far. */
  get recorded(): readonly MetricRecord[] {
    return this.metrics;
  }

  /** The step of the run's last checkpoint (0: none yet). */
  get lastCheckpoint(): number {
    return this.checkpointed;
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
    this.run = await buildRun(this.engine, this.model, request, files);
    const { prepared, trainer } = this.run;
    this.fileNames = files.map((f) => f.name);
    this.metrics = [];
    this.checkpointed = 0;
    if (saved) {
      const { checkpoint } = saved;
      if (checkpoint) trainer.restore(parseCheckpoint(checkpoint.json, checkpoint.tensors, 'the saved run'));
      this.checkpointed = trainer.stepsCompleted;
      this.metrics = saved.metrics.filter((m) => m.step <= trainer.stepsCompleted);
      await this.store?.reopen(request.settings);
    } else {
      await this.store?.begin(request, files);
    }
    const sequences = prepared.data;
    this.prepared = {
      type: 'prepared',
      method: request.settings.method,
      format: prepared.format,
      unit: sequences.kind,
      records: prepared.records,
      skipped: prepared.skipped,
      train: sequences.train.length,
      validation: sequences.validation.length,
      dropped: sequences.dropped,
      totalSteps: trainer.totalSteps,
      warmup: trainer.warmup,
      step: trainer.stepsCompleted,
      full: request.settings.full,
    };
    emit(this.prepared);
    for (const metric of this.metrics) emit({ type: 'metric', metric });
    await this.continue(emit);
  }

  /** Steps until the run finishes, is paused or stopped, or fails. */
  async continue(emit: (e: TrainEvent) => void): Promise<void> {
    const trainer = this.current;
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
          this.checkpointed = c.step;
          emit({ type: 'checkpoint', step: c.step });
        },
        shouldStop: () => this.pauseRequested || this.stopRequested,
      });
      const step = trainer.stepsCompleted;
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
    this.run?.destroy();
    this.run = null;
  }
}
