/**
 * What the engine holds between calls: the GPU device, the loaded model, its training run and an imported adapter.
 * The browser's worker and the `hone` CLI both drive the engine through it; chats go through `chat.ts`, exports
 * through `run-exports.ts`.
 */
import type { AdapterSummary } from '../../core/adapter';
import { BASE_PRECISION_LABELS, type BasePrecision } from '../../core/base-precision';
import { type Checkpoint, loadAdapter, type ReadFile } from '../../core/checkpoint';
import type { DatasetFile } from '../../core/dataset/read-records';
import { pickedFilesReader } from '../../core/export/unzip-folder';
import type { DownloadProgress, FileCache } from '../../core/hub';
import { checkFit, defaultBaseOf } from '../../core/model-memory';
import type { TrainSettings } from '../../core/training/settings';
import type {
  DescribedModel,
  GenerateRequest,
  GenerateResult,
  ImportedAdapterSummary,
  KeptCheckpoint,
  LoadedModelSummary,
  RunCheckpoints,
  SavedRunSummary,
} from './api';
import { type ReplyModel, reply } from './chat';
import type { EvalReport, EvalRequest } from './evaluate';
import { adapterFiles } from './export';
import type { Gpu } from './gpu/device';
import { EngineKernels, type KernelChoices, kernelChoicesFor } from './model/kernels';
import { GpuLora, loraSettingsFor } from './model/lora';
import { tuningStoreFor } from './model/tuning-store';
import type { GpuWeights } from './model/weights';
import {
  describeModel,
  type HubSettings,
  loadModelFiles,
  type ModelSource,
  readerFor,
  sourceLabel,
} from './model-loader';
import { type EvaluateOptions, RunEvaluation } from './run-evaluation';
import { RunExports, type ScratchFile } from './run-exports';
import type { Engine } from './train/build-run';
import type { RuleWorker } from './train/js-reward';
import { type RewardChoice, spawnWebRuleWorker } from './train/reward-choice';
import { type RunTiming, timeRun } from './train/run-timing';
import {
  type ModelOnGpu,
  type RunListing,
  type RunStore,
  type TrainEvent,
  TrainingSession,
  type TrainRequest,
} from './train/training-session';
import { uploadChecked } from './upload-weights';

export interface EngineSessionOptions {
  /** A new device: the browser's, or Dawn's in Node. */
  acquire: () => Promise<Gpu>;
  /** Where Hub downloads are kept. */
  cache?: FileCache | null;
  /** Where runs are kept, to resume and compare (OPFS in the browser, a folder for `hone train`). */
  runs?: RunStore | null;
  /** Where matmul tuning is kept across sessions (GPUs tune before a run's first step). */
  tuning?: FileCache | null;
  /** The kernels for an adapter (tests pick GPUs' choices on a software adapter). */
  choose?: (adapter: AdapterSummary) => KernelChoices;
  /** A worker for a reward rule: a Web Worker, or a Node worker thread. */
  spawnRuleWorker?: () => RuleWorker;
  /** Where large exports are written piece by piece (OPFS in the browser); in memory when left out. */
  scratch?: (name: string) => Promise<ScratchFile>;
}

/** The loaded model and where its files are read from again (a merged export re-reads the base's tensors). */
interface Loaded {
  label: string;
  checkpoint: Checkpoint;
  read: ReadFile;
  weights: GpuWeights;
  /** Null when the model has no tokenizer: it cannot read a dataset or text. */
  model: ModelOnGpu | null;
  /** Why the tokenizer could not be loaded. */
  tokenizerError: string | null;
}

export class EngineSession {
  /** The device, with the kernel choices for its adapter. */
  private gpu: (Gpu & { choices: KernelChoices }) | null = null;
  private kernels: EngineKernels | null = null;
  private loaded: Loaded | null = null;
  private training: TrainingSession | null = null;
  private imported: GpuLora | null = null;
  private stopRequested = false;
  /** Why the last device was lost (a driver reset, a tab in the background too long); the next call starts a new one. */
  private lostReason: string | null = null;
  private readonly lostListeners: ((reason: string) => void)[] = [];
  private readonly runs: RunStore | null;
  /** The run's adapter and tuned model as files: zipped, as GGUF, or published. */
  readonly exports: RunExports;
  private readonly evaluation: RunEvaluation;
  /** The load in progress, which the next one waits for. */
  private loading: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: EngineSessionOptions) {
    this.runs = options.runs ?? null;
    this.exports = new RunExports({
      present: () => this.present(),
      training: () => this.training,
      keptAdapter: (label, which) => this.keptAdapter(label, which),
      device: async () => (await this.device()).device,
      evaluation: () => this.evaluation.kept(),
      scratch: options.scratch,
    });
    this.evaluation = new RunEvaluation({
      engine: () => this.engine(),
      tunedModel: (adapter) => this.tunedModel(adapter),
      rewardFiles: (choice) => this.rewardFiles(choice),
      runs: this.runs,
    });
  }

  private async device(): Promise<Gpu & { choices: KernelChoices }> {
    if (!this.gpu) {
      const gpu = await this.options.acquire();
      this.gpu = { ...gpu, choices: (this.options.choose ?? kernelChoicesFor)(gpu.summary) };
      this.gpu.device.lost.then((info) => {
        this.gpu = null;
        this.kernels = null;
        this.loaded = null;
        this.training = null;
        this.imported = null;
        this.lostReason = info.message || info.reason || 'unknown reason';
        for (const listener of this.lostListeners) listener(this.lostReason);
      });
    }
    return this.gpu;
  }

  /** The device and its kernels, compiled once per device. */
  private async engine(): Promise<Engine> {
    const { device, summary, choices } = await this.device();
    const tuning = tuningStoreFor(this.options.tuning ?? null, summary, choices);
    this.kernels ??= new EngineKernels(device, choices, tuning);
    return { device, kernels: this.kernels, spawnRuleWorker: this.options.spawnRuleWorker ?? spawnWebRuleWorker };
  }

  /** The GPU adapter's name, once a device is acquired. */
  get adapterName(): string {
    const summary = this.gpu?.summary;
    return summary ? summary.description || summary.architecture : 'no GPU yet';
  }

  /** `listener` hears why, each time the device is lost (the model and the run on it are gone with it). */
  onDeviceLost(listener: (reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  /** Frees the run, the model and the device (a Node process exits only once the device is gone). */
  close(): void {
    this.training?.destroy();
    this.imported?.destroy();
    this.loaded?.weights.destroy();
    this.gpu?.device.destroy();
    this.training = null;
    this.imported = null;
    this.loaded = null;
    this.gpu = null;
    this.kernels = null;
  }

  /** The model's facts, with whether it fits this GPU's limits at its default base precision. */
  async describe(source: ModelSource, hub: HubSettings): Promise<DescribedModel> {
    const { device, choices } = await this.device();
    const info = await describeModel(source, hub, this.options.cache ?? null, choices.halfWeights);
    const defaultBase = defaultBaseOf(info.config, { limits: device.limits, halfMatrices: choices.halfWeights });
    return { ...info, defaultBase, fit: checkFit(info.memory[defaultBase], device.limits) };
  }

  /** Puts the model on the GPU, its projections at `base` (the model's default precision when not given). */
  async load(
    source: ModelSource,
    hub: HubSettings,
    onProgress: (p: DownloadProgress) => void,
    base?: BasePrecision,
  ): Promise<LoadedModelSummary> {
    const read = readerFor(source, hub, this.options.cache ?? null, onProgress);
    return this.loadFrom(read, sourceLabel(source), base);
  }

  /** Where a model's files are read (the cache first, a download heard by `onProgress`), and its name. */
  modelReader(
    source: ModelSource,
    hub: HubSettings,
    onProgress?: (p: DownloadProgress) => void,
  ): { label: string; read: ReadFile } {
    return { label: sourceLabel(source), read: readerFor(source, hub, this.options.cache ?? null, onProgress) };
  }

  /**
   * Reads the model through `read` and puts it on the GPU, in place of the loaded one, its projections at `base`
   * (by default the model's: defaultBaseOf); loads run one at a time.
   */
  loadFrom(read: ReadFile, label: string, base?: BasePrecision): Promise<LoadedModelSummary> {
    const load = this.loading.then(() => this.loadNow(read, label, base));
    this.loading = load.catch(() => {});
    return load;
  }

  private async loadNow(read: ReadFile, label: string, chosen?: BasePrecision): Promise<LoadedModelSummary> {
    const started = performance.now();
    const model = await loadModelFiles(read, label);
    const { device, choices } = await this.device();
    if (this.training?.isRunning) throw new Error('a run is training on the loaded model: stop it first');
    this.training?.destroy();
    this.training = null;
    this.imported?.destroy();
    this.imported = null;
    this.loaded?.weights.destroy();
    this.loaded = null;
    this.lostReason = null;
    const { checkpoint, tokenizer } = model;
    const halfMatrices = choices.halfWeights;
    const base = chosen ?? defaultBaseOf(checkpoint.config, { limits: device.limits, halfMatrices });
    const precision = base === 'f16' ? '' : ` (${BASE_PRECISION_LABELS[base]})`;
    const weights = await uploadChecked(device, checkpoint, {
      halfMatrices,
      base,
      what: `the weights of ${label}${precision}`,
    });
    const fp32Copy = () =>
      uploadChecked(device, checkpoint, {
        halfMatrices: false,
        what: `the fp32 copy of ${label}'s weights that a full-parameter run trains`,
      });
    const onGpu = tokenizer && { label, config: checkpoint.config, tokenizer, weights, fp32Copy };
    this.loaded = { label, checkpoint, read, weights, model: onGpu, tokenizerError: model.tokenizerError };
    // Work on a lost device silently does nothing: say so rather than report a model that is not there.
    await device.queue.onSubmittedWorkDone();
    if (this.lostReason) {
      throw new Error(`The GPU device was lost while loading ${label} (${this.lostReason}). Load it again.`);
    }
    return {
      label,
      config: checkpoint.config,
      gpuBytes: weights.byteLength,
      halfMatrices,
      base,
      tokenizer: tokenizer ? { hasChatTemplate: tokenizer.hasChatTemplate, eosTokenIds: tokenizer.eosTokenIds } : null,
      tokenizerError: model.tokenizerError,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** The loaded model, whatever it can read. */
  private present(): Loaded {
    if (this.lostReason) throw new Error(`The GPU device was lost (${this.lostReason}). Load the model again.`);
    if (!this.loaded) throw new Error('Load a model in the Model step first.');
    return this.loaded;
  }

  /** The loaded model, ready to train: it must have a tokenizer, since datasets are text. */
  private async trainable(): Promise<Engine & { model: ModelOnGpu }> {
    const { model } = this.present();
    if (!model) throw new Error('The loaded model has no tokenizer, so it cannot read a dataset.');
    return { ...(await this.engine()), model };
  }

  // ---- training ---------------------------------------------------------------------------------------------

  /** Starts a run on the loaded model; resolves when it finishes, pauses, stops or fails (events say which). */
  async startTraining(request: TrainRequest, files: DatasetFile[], emit: (e: TrainEvent) => void): Promise<void> {
    if (this.training?.isRunning) throw new Error('a run is already training');
    const { model, ...engine } = await this.trainable();
    const base = this.loaded?.weights.base ?? 'f16';
    const resolved = await this.withKeptReward({ ...request, model: model.label, base });
    this.training?.destroy();
    this.training = new TrainingSession(engine, model, this.runs);
    await this.training.start(resolved, files, this.sayingDeviceLoss(emit));
  }

  /** The events, a failure on a lost device told as such: what was kept, and how to go on. */
  private sayingDeviceLoss(emit: (e: TrainEvent) => void): (e: TrainEvent) => void {
    const training = this.training;
    return (event) => {
      if (event.type !== 'failed' || this.lostReason === null) return emit(event);
      const kept = training?.lastCheckpoint ?? 0;
      const what =
        kept > 0
          ? `the run is kept at its last checkpoint, step ${kept}; load the model again to resume it`
          : 'it had no checkpoint yet; load the model again and start it again';
      emit({ ...event, message: `The GPU device was lost (${this.lostReason}) at step ${event.step}: ${what}.` });
    };
  }

  /** How long a run of these settings on this data would take here, from two of its steps timed. */
  async timeRun(request: TrainRequest, files: DatasetFile[]): Promise<RunTiming> {
    if (this.training?.isRunning) throw new Error('a run is training; its progress shows the time left');
    const { model, ...engine } = await this.trainable();
    return timeRun(engine, model, await this.withKeptReward({ ...request, model: model.label }), files);
  }

  /** A kept run's reward model, picked as the reward, read as its adapter's PEFT files; other choices as they are. */
  private async rewardFiles(reward: RewardChoice): Promise<RewardChoice> {
    if (reward.kind !== 'kept-run') return reward;
    const adapter = await this.exports.trainedAdapter({ run: reward.run, step: reward.step });
    if (adapter.settings.method !== 'rm') throw new Error(`${reward.name} is not a reward model's run`);
    const files = [...adapterFiles(adapter)].map(([path, bytes]) => ({
      path,
      file: new Blob([new Uint8Array(bytes)]),
    }));
    return { kind: 'reward-model', name: reward.name, files };
  }

  /** The request with its reward read (a kept run's reward model as files). */
  private async withKeptReward(request: TrainRequest): Promise<TrainRequest> {
    return request.reward ? { ...request, reward: await this.rewardFiles(request.reward) } : request;
  }

  pauseTraining(): void {
    this.training?.pause();
  }

  async resumeTraining(emit: (e: TrainEvent) => void): Promise<void> {
    if (!this.training) throw new Error('there is no run to resume');
    await this.training.continue(this.sayingDeviceLoss(emit));
  }

  async stopTraining(): Promise<void> {
    await this.training?.stop();
  }

  /** A run saved by an earlier page (or before a crash or a lost device) that can continue, and where it was. */
  async savedRun(): Promise<SavedRunSummary | null> {
    const saved = await this.runs?.load();
    if (!saved || saved.ended) return null;
    return {
      model: saved.request.model,
      settings: saved.request.settings,
      step: saved.checkpoint ? (JSON.parse(saved.checkpoint.json) as { step: number }).step : 0,
      files: saved.files.map((f) => f.name),
    };
  }

  /** The saved run's request, and whether it ended (finished or stopped); null when there is none. */
  async savedRunRequest(): Promise<{ request: TrainRequest; ended: boolean } | null> {
    const saved = await this.runs?.load();
    return saved ? { request: saved.request, ended: saved.ended } : null;
  }

  /**
   * Continues the saved run from its checkpoint, on the loaded model (which must be the run's). `longer` changes
   * what a checkpoint may differ in (the run's length, evaluation and checkpoint intervals, recomputing), so a
   * finished run can train on.
   */
  async resumeSavedRun(emit: (e: TrainEvent) => void, longer: Partial<TrainSettings> = {}): Promise<void> {
    const saved = await this.runs?.load();
    if (!saved) throw new Error('there is no saved run');
    if (this.training?.isRunning) throw new Error('a run is already training');
    const { model, ...engine } = await this.trainable();
    const base = saved.request.base ?? 'f16';
    const loaded = this.loaded?.weights.base ?? 'f16';
    if (base !== loaded) {
      const [want, have] = [BASE_PRECISION_LABELS[base], BASE_PRECISION_LABELS[loaded]];
      throw new Error(
        `This run trained over a ${want} base, and the model is loaded at ${have}: load it at ${want} in the Model step to resume the run.`,
      );
    }
    this.training?.destroy();
    this.training = new TrainingSession(engine, model, this.runs);
    const request = { ...saved.request, settings: { ...saved.request.settings, ...longer } };
    await this.training.start(request, saved.files, this.sayingDeviceLoss(emit), saved);
  }

  async discardSavedRun(): Promise<void> {
    await this.runs?.clear();
  }

  /** Every kept run, newest first, for the runs list and its overlaid curves. */
  async listRuns(): Promise<RunListing[]> {
    return (await this.runs?.runs()) ?? [];
  }

  /** The kept runs of the loaded model with checkpoint adapters, newest first, for Compare and Export to offer. */
  async checkpoints(): Promise<RunCheckpoints[]> {
    await this.loading;
    const loaded = this.loaded?.label;
    return (await this.listRuns()).flatMap((run) =>
      run.steps.length > 0 && run.model === loaded
        ? [{ run: run.id, started: run.started, method: run.settings.method, steps: run.steps }]
        : [],
    );
  }

  /** A kept run's request, steps and metrics, checked to belong to the loaded model. */
  private async keptRun(label: string, id: string) {
    const kept = await this.runs?.keptRun(id);
    if (!kept) throw new Error('That run is no longer kept (the newest twenty are).');
    if (kept.request.model !== label) throw new Error(`That run belongs to ${kept.request.model}; ${label} is loaded.`);
    return kept;
  }

  /** A kept run's settings and flat adapter at one of its checkpoints. */
  private async keptAdapter(label: string, checkpoint: KeptCheckpoint) {
    const kept = await this.keptRun(label, checkpoint.run);
    const params = await this.runs?.loadAdapter(checkpoint.run, checkpoint.step);
    if (!params) throw new Error(`The run has no checkpoint at step ${checkpoint.step} any more.`);
    return { ...kept, params };
  }

  // ---- comparing base and tuned ------------------------------------------------------------------------------

  /** Reads a PEFT adapter folder (or its zip) a person picked and puts it beside the loaded model. */
  async importAdapter(name: string, files: { path: string; file: Blob }[]): Promise<ImportedAdapterSummary> {
    return this.importAdapterFrom(await pickedFilesReader(files), name);
  }

  /** Reads a PEFT adapter through `read` and puts it beside the loaded model, checked against it. */
  async importAdapterFrom(read: ReadFile, name: string): Promise<ImportedAdapterSummary> {
    const { checkpoint } = this.present();
    const { device } = await this.device();
    const adapter = await loadAdapter(read, name, checkpoint.config);
    this.imported?.destroy();
    this.imported = GpuLora.fromAdapter(device, checkpoint.config, adapter);
    return { name, r: adapter.config.r, modules: adapter.modules.length };
  }

  /**
   * One answer to the prompt, streamed through `onText` (the answer so far). `adapter` picks the base model
   * (adapter off) or a tuned one. The same seed on both sides makes their sampling comparable.
   */
  async generate(request: GenerateRequest, onText: (text: string) => void): Promise<GenerateResult> {
    const loaded = this.present();
    if (!loaded.model && !('ids' in request.prompt)) {
      throw new Error(`${loaded.tokenizerError}; the model reads token ids only`);
    }
    const { model, release } = await this.tunedModel(request.adapter);
    this.stopRequested = false;
    try {
      return await reply(await this.engine(), model, request, (text) => {
        onText(text);
        return !this.stopRequested;
      });
    } finally {
      release();
    }
  }

  /**
   * The loaded model with an adapter on: none (the base), this run's (a full run's own weights), the imported one,
   * or a kept checkpoint's, read for the caller's use and let go by `release`.
   */
  private async tunedModel(adapter: GenerateRequest['adapter']): Promise<{ model: ReplyModel; release(): void }> {
    const loaded = this.present();
    const { device } = await this.engine();
    if (this.training?.isRunning) throw new Error('A run is training: pause or stop it to chat or evaluate.');
    const config = loaded.checkpoint.config;
    const model: ReplyModel = {
      config,
      weights: loaded.weights,
      lora: null,
      tokenizer: loaded.model?.tokenizer ?? null,
    };
    if (adapter === 'none') return { model, release: () => {} };
    if (adapter === 'run') {
      const trainer = this.training?.current;
      if (!trainer)
        throw new Error('There is no trained model yet: train one in the Train step, or import an adapter.');
      if (trainer.settings.method === 'rm') throw new Error(REWARD_MODEL_CANNOT_CHAT);
      // A run that trains every weight answers through its own copy of them, with no adapter.
      const weights = this.training?.weights ?? loaded.weights;
      return { model: { ...model, weights, lora: trainer.lora }, release: () => {} };
    }
    if (adapter === 'imported') {
      if (!this.imported) throw new Error('No adapter was imported.');
      return { model: { ...model, lora: this.imported }, release: () => {} };
    }
    const { request: run, params } = await this.keptAdapter(loaded.label, adapter);
    if (run.settings.method === 'rm') throw new Error(REWARD_MODEL_CANNOT_CHAT);
    const lora = GpuLora.create(device, config, loraSettingsFor(config, run.settings, 0), (m, a, b) => {
      a.set(params.subarray(m.offsetA, m.offsetA + a.length));
      b.set(params.subarray(m.offsetB, m.offsetB + b.length));
    });
    return { model: { ...model, lora }, release: () => lora.destroy() };
  }

  /** Ends every answer being generated after its current token. */
  stopGenerating(): void {
    this.stopRequested = true;
  }

  // ---- evaluating --------------------------------------------------------------------------------------------

  /** The contestants answer every example and are scored (run-evaluation.ts); the report is kept with the run. */
  evaluate(request: EvalRequest, options: EvaluateOptions = {}): Promise<EvalReport> {
    return this.evaluation.evaluate(request, options);
  }

  /** The evaluation kept with the latest run (after a reload too); null when none is. */
  keptEvaluation(): Promise<EvalReport | null> {
    return this.evaluation.kept();
  }

  /** Ends the evaluation after the batch at hand, with the examples every contestant finished. */
  stopEvaluating(): void {
    this.evaluation.stop();
  }
}

const REWARD_MODEL_CANNOT_CHAT =
  'This run trains a reward model: it scores answers rather than writing them. Use it as the reward for policy ' +
  'optimization; to chat with a tuned model, train with SFT or DPO.';
