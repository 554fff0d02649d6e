import type { AdapterSummary } from '../../core/adapter';
import { type Checkpoint, loadAdapter, type ReadFile } from '../../core/checkpoint';
import type { DatasetFile } from '../../core/dataset/read-records';
import { adapterFolderFiles, zipAdapterFolder } from '../../core/export/adapter-folder';
import { baseModelId, exportName } from '../../core/export/base-model-id';
import { elementCount, mergedModelFiles, modelFolderFiles } from '../../core/export/merge';
import type { CardInfo } from '../../core/export/model-card';
import { expandZip } from '../../core/export/unzip-folder';
import { zipFolder } from '../../core/export/zip';
import { type SamplingSettings, samplingProblems } from '../../core/generation/sampling';
import type { DownloadProgress, FileCache } from '../../core/hub';
import type { ModelConfig } from '../../core/model-config';
import { checkFit, weightBytes } from '../../core/model-memory';
import { loraScale } from '../../core/peft';
import type { Method, TrainSettings } from '../../core/training/settings';
import type { Gpu } from './gpu/device';
import { Decoder } from './model/decoder';
import { type Generation, generate as generateTokens } from './model/generate';
import { EngineKernels, type KernelChoices, kernelChoicesFor } from './model/kernels';
import { GpuLora, loraLayout, loraSettingsFor, splitLoraVector } from './model/lora';
import { tuningStoreFor } from './model/tuning-store';
import { GpuWeights } from './model/weights';
import {
  describeModel,
  filesReader,
  type HubSettings,
  loadModelFiles,
  type ModelInfo,
  type ModelSource,
  readerFor,
  sourceLabel,
} from './model-loader';
import { type RunTiming, timeRun } from './train/run-timing';
import {
  type MetricRecord,
  type ModelOnGpu,
  type RunListing,
  type RunStore,
  type TrainEvent,
  TrainingSession,
  type TrainRequest,
} from './train/training-session';

export interface DescribedModel extends ModelInfo {
  fit: { fits: boolean; reason: string };
}

export interface LoadedModelSummary {
  label: string;
  config: ModelConfig;
  /** Bytes of weights now on the GPU. */
  gpuBytes: number;
  /** The matrices are held at fp16 (on GPUs; CPU adapters keep fp32). Full-parameter runs train an fp32 copy. */
  halfMatrices: boolean;
  tokenizer: { hasChatTemplate: boolean; eosTokenIds: number[] } | null;
  /** Why the tokenizer could not be loaded (the model still trains on token ids). */
  tokenizerError: string | null;
  seconds: number;
}

/**
 * Uploads a checkpoint's weights (with `halfMatrices`, the matrices at fp16), turning the GPU's own failures (out
 * of memory, refused buffers) into plain words; `what` names them in those words.
 */
async function uploadChecked(
  device: GPUDevice,
  checkpoint: Checkpoint,
  halfMatrices: boolean,
  what: string,
): Promise<GpuWeights> {
  const config = checkpoint.config;
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let weights: GpuWeights;
  try {
    weights = await GpuWeights.upload(device, config, (key) => checkpoint.readFloat32(key), { halfMatrices });
  } catch (error) {
    await device.popErrorScope();
    await device.popErrorScope();
    throw new Error(`Could not put ${what} on the GPU: ${(error as Error).message}`);
  }
  const invalid = await device.popErrorScope();
  const outOfMemory = await device.popErrorScope();
  const failure = outOfMemory ?? invalid;
  if (failure) {
    weights.destroy();
    const size = `${(weightBytes(config, halfMatrices) / 2 ** 30).toFixed(2)} GiB`;
    throw new Error(
      outOfMemory
        ? `Not enough GPU memory for ${what} (${size}). Close other GPU-heavy tabs, or pick a smaller model.`
        : `The GPU refused ${what} (${failure.message}).`,
    );
  }
  return weights;
}

/**
 * What the engine worker holds between calls: the GPU device and the loaded model. Loading a model replaces
 * (and frees) the previous one.
 */
export class EngineSession {
  /** The device, with the kernel choices for its adapter. */
  private gpu: (Gpu & { choices: KernelChoices }) | null = null;
  private kernels: EngineKernels | null = null;
  private weights: GpuWeights | null = null;
  private model: ModelOnGpu | null = null;
  /** The loaded model's files, read again for a merged export (from the cache, the studio or the picked files). */
  private loadedFiles: { checkpoint: Checkpoint; read: ReadFile } | null = null;
  private training: TrainingSession | null = null;
  private imported: GpuLora | null = null;
  private stopRequested = false;
  /** Why the last device was lost (a driver reset, a tab in the background too long); the next call starts a new one. */
  private lostReason: string | null = null;

  constructor(
    /** A new device: the browser's, or Dawn's in Node. */
    private readonly acquire: () => Promise<Gpu>,
    private readonly cache: FileCache | null,
    private readonly runs: RunStore | null = null,
    /** Where matmul tuning is kept across sessions (GPUs tune before a run's first step). */
    private readonly tuning: FileCache | null = null,
    /** The kernels for an adapter (tests pick GPUs' choices on a software adapter). */
    private readonly choose: (adapter: AdapterSummary) => KernelChoices = kernelChoicesFor,
  ) {}

  private async device(): Promise<Gpu & { choices: KernelChoices }> {
    if (!this.gpu) {
      const gpu = await this.acquire();
      this.gpu = { ...gpu, choices: this.choose(gpu.summary) };
      this.gpu.device.lost.then((info) => {
        this.gpu = null;
        this.kernels = null;
        this.weights = null;
        this.model = null;
        this.training = null;
        this.imported = null;
        this.lostReason = info.message || info.reason || 'unknown reason';
      });
    }
    return this.gpu;
  }

  /** The device and its kernels, compiled once per device. */
  private async engine(): Promise<{ device: GPUDevice; kernels: EngineKernels }> {
    const { device, summary, choices } = await this.device();
    if (!this.kernels) this.kernels = new EngineKernels(device, choices, tuningStoreFor(this.tuning, summary, choices));
    return { device, kernels: this.kernels };
  }

  /** The model's facts, with whether it fits this GPU's limits. */
  async describe(source: ModelSource, hub: HubSettings): Promise<DescribedModel> {
    const { device, choices } = await this.device();
    const info = await describeModel(source, hub, this.cache, choices.halfWeights);
    return { ...info, fit: checkFit(info.memory, device.limits) };
  }

  async load(
    source: ModelSource,
    hub: HubSettings,
    onProgress: (p: DownloadProgress) => void,
  ): Promise<LoadedModelSummary> {
    const started = performance.now();
    const label = sourceLabel(source);
    const read = readerFor(source, hub, this.cache, onProgress);
    const model = await loadModelFiles(read, label);
    const { device, choices } = await this.device();
    if (this.training?.isRunning) throw new Error('a run is training on the loaded model: stop it first');
    this.training?.destroy();
    this.training = null;
    this.imported?.destroy();
    this.imported = null;
    this.weights?.destroy();
    this.weights = null;
    this.model = null;
    this.loadedFiles = null;
    this.lostReason = null;
    const { checkpoint } = model;
    this.weights = await uploadChecked(device, checkpoint, choices.halfWeights, `the weights of ${label}`);
    this.loadedFiles = { checkpoint, read };
    if (model.tokenizer) {
      this.model = {
        label,
        config: checkpoint.config,
        tokenizer: model.tokenizer,
        weights: this.weights,
        fp32Copy: () =>
          uploadChecked(
            device,
            checkpoint,
            false,
            `the fp32 copy of ${label}'s weights that a full-parameter run trains`,
          ),
      };
    }
    // Work on a lost device silently does nothing: say so rather than report a model that is not there.
    await device.queue.onSubmittedWorkDone();
    if (this.lostReason) {
      throw new Error(`The GPU device was lost while loading ${label} (${this.lostReason}). Load it again.`);
    }
    return {
      label,
      config: model.checkpoint.config,
      gpuBytes: this.weights.byteLength,
      halfMatrices: choices.halfWeights,
      tokenizer: model.tokenizer
        ? { hasChatTemplate: model.tokenizer.hasChatTemplate, eosTokenIds: model.tokenizer.eosTokenIds }
        : null,
      tokenizerError: model.tokenizerError,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** The loaded model, ready to train: it must have a tokenizer, since datasets are text. */
  private async trainable(): Promise<{ device: GPUDevice; kernels: EngineKernels; model: ModelOnGpu }> {
    if (this.lostReason) throw new Error(`The GPU device was lost (${this.lostReason}). Load the model again.`);
    if (!this.weights) throw new Error('Load a model in the Model step first.');
    if (!this.model) throw new Error('The loaded model has no tokenizer, so it cannot read a dataset.');
    return { ...(await this.engine()), model: this.model };
  }

  /** Starts a run on the loaded model; resolves when it finishes, pauses, stops or fails (events say which). */
  async startTraining(request: TrainRequest, files: DatasetFile[], emit: (e: TrainEvent) => void): Promise<void> {
    if (this.training?.isRunning) throw new Error('a run is already training');
    const { device, kernels, model } = await this.trainable();
    this.training?.destroy();
    this.training = new TrainingSession(device, kernels, model, this.runs);
    await this.training.start({ ...request, model: model.label }, files, emit);
  }

  /** How long a run of these settings on this data would take here, from two of its steps timed. */
  async timeRun(request: TrainRequest, files: DatasetFile[]): Promise<RunTiming> {
    if (this.training?.isRunning) throw new Error('a run is training; its progress shows the time left');
    const { device, kernels, model } = await this.trainable();
    return timeRun({ device, kernels }, model, { ...request, model: model.label }, files);
  }

  pauseTraining(): void {
    this.training?.pause();
  }

  async resumeTraining(emit: (e: TrainEvent) => void): Promise<void> {
    if (!this.training) throw new Error('there is no run to resume');
    await this.training.continue(emit);
  }

  async stopTraining(): Promise<void> {
    await this.training?.stop();
  }

  /** A run saved by an earlier page (or before a crash or a lost device) that can continue, and where it was. */
  async savedRun(): Promise<{ model: string; settings: TrainSettings; step: number; files: string[] } | null> {
    const saved = await this.runs?.load();
    if (!saved) return null;
    const step = (JSON.parse(saved.checkpoint.json) as { step: number }).step;
    return {
      model: saved.request.model,
      settings: saved.request.settings,
      step,
      files: saved.files.map((f) => f.name),
    };
  }

  /** Continues the saved run from its checkpoint, on the loaded model (which must be the run's). */
  async resumeSavedRun(emit: (e: TrainEvent) => void): Promise<void> {
    const saved = await this.runs?.load();
    if (!saved) throw new Error('there is no saved run');
    if (this.training?.isRunning) throw new Error('a run is already training');
    const { device, kernels, model } = await this.trainable();
    this.training?.destroy();
    this.training = new TrainingSession(device, kernels, model, this.runs);
    await this.training.start(saved.request, saved.files, emit, saved);
  }

  async discardSavedRun(): Promise<void> {
    await this.runs?.clear();
  }

  // ---- comparing base and tuned ---------------------------------------------------------------------------

  /** Reads a PEFT adapter folder a person picked and puts it beside the loaded model, checked against it. */
  async importAdapter(name: string, files: { path: string; file: Blob }[]): Promise<ImportedAdapterSummary> {
    const { device, model } = await this.trainable();
    const adapter = await loadAdapter(filesReader(await expandZip(files)), name, model.config);
    this.imported?.destroy();
    this.imported = GpuLora.fromAdapter(device, model.config, adapter);
    return { name, r: adapter.config.r, modules: adapter.modules.length };
  }

  /**
   * One answer to the conversation, streamed through `onText` (the answer so far). `side` picks the base model
   * (adapter off) or the tuned one: this run's adapter, or the imported one. The same seed on both sides makes
   * their sampling comparable.
   */
  async generate(request: GenerateRequest, onText: (text: string) => void): Promise<GenerateResult> {
    const { device, kernels, model } = await this.trainable();
    if (this.training?.isRunning) throw new Error('A run is training: pause or stop it to chat.');
    const problems = samplingProblems(request.sampling);
    if (problems.length > 0) throw new Error(problems.join('; '));
    let weights = model.weights;
    let lora: GpuLora | null = null;
    // The saved run's adapter is read for this answer only, and let go after it.
    let owned: GpuLora | null = null;
    if (request.adapter === 'run') {
      const trainer = this.training?.current;
      if (!trainer)
        throw new Error('There is no trained model yet: train one in the Train step, or import an adapter.');
      if (trainer.settings.method === 'rm') throw new Error(REWARD_MODEL_CANNOT_CHAT);
      // A run that trains every weight is compared through its own copy of them, with no adapter.
      weights = this.training?.weights ?? weights;
      lora = trainer.lora;
    } else if (request.adapter === 'imported') {
      if (!this.imported) throw new Error('No adapter was imported.');
      lora = this.imported;
    } else if (typeof request.adapter === 'object') {
      owned = await this.checkpointAdapter(device, model, request.adapter);
      lora = owned;
    }
    const tokenizer = model.tokenizer;
    const prompt = tokenizer.encode(tokenizer.applyChatTemplate(request.messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    const length = Math.min(model.config.maxPositionEmbeddings, prompt.length + request.maxNewTokens);
    const decoder = new Decoder(device, kernels, weights, lora, length);
    this.stopRequested = false;
    try {
      const result = await generateTokens(
        decoder,
        prompt,
        {
          ...request.sampling,
          maxNewTokens: request.maxNewTokens,
          seed: request.seed,
          stopIds: tokenizer.eosTokenIds,
          stopStrings: request.stopStrings,
          decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
        },
        (_, text) => {
          if (text !== undefined && !text.endsWith('\uFFFD')) onText(text);
          return !this.stopRequested;
        },
      );
      return {
        text: result.text ?? '',
        tokens: result.ids.length,
        tokensPerSecond: result.tokensPerSecond,
        stoppedBy: result.stoppedBy,
      };
    } finally {
      decoder.destroy();
      owned?.destroy();
    }
  }

  /** Every kept run, newest first, for the runs list and its overlaid curves. */
  async listRuns(): Promise<RunListing[]> {
    return (await this.runs?.runs()) ?? [];
  }

  /**
   * The kept runs of the loaded model with checkpoint adapters, newest first, for Compare and Export to offer.
   */
  async checkpoints(): Promise<RunCheckpoints[]> {
    const loaded = this.model?.label;
    return (await this.listRuns()).flatMap((run) =>
      run.steps.length > 0 && run.model === loaded
        ? [{ run: run.id, started: run.started, method: run.settings.method, steps: run.steps }]
        : [],
    );
  }

  /** A kept run's request, steps and metrics, checked to belong to the loaded model. */
  private async keptRun(model: ModelOnGpu, id: string) {
    const kept = await this.runs?.keptRun(id);
    if (!kept) throw new Error('That run is no longer kept (the newest twenty are).');
    if (kept.request.model !== model.label) {
      throw new Error(`That run belongs to ${kept.request.model}; ${model.label} is loaded.`);
    }
    return kept;
  }

  /** A kept run's flat adapter at one of its checkpoints. */
  private async keptAdapter(checkpoint: KeptCheckpoint): Promise<Float32Array> {
    const flat = await this.runs?.loadAdapter(checkpoint.run, checkpoint.step);
    if (!flat) throw new Error(`The run has no checkpoint at step ${checkpoint.step} any more.`);
    return flat;
  }

  /** A kept run's adapter at one of its checkpoints, on the GPU. */
  private async checkpointAdapter(device: GPUDevice, model: ModelOnGpu, checkpoint: KeptCheckpoint): Promise<GpuLora> {
    const s = (await this.keptRun(model, checkpoint.run)).request.settings;
    if (s.method === 'rm') throw new Error(REWARD_MODEL_CANNOT_CHAT);
    const flat = await this.keptAdapter(checkpoint);
    return GpuLora.create(device, model.config, loraSettingsFor(model.config, s, 0), (m, a, b) => {
      a.set(flat.subarray(m.offsetA, m.offsetA + a.length));
      b.set(flat.subarray(m.offsetB, m.offsetB + b.length));
    });
  }

  // ---- exporting ------------------------------------------------------------------------------------------

  /** The adapter of this run (as trained so far) or of a kept checkpoint, split into its modules. */
  private async trainedAdapter(which: 'run' | KeptCheckpoint): Promise<TrainedAdapter> {
    const { model } = await this.trainable();
    let found: { settings: TrainSettings; params: Float32Array; metrics: readonly MetricRecord[]; step: number };
    let data: CardInfo['data'] = null;
    if (which === 'run') {
      const trainer = this.training?.current;
      if (!trainer) throw new Error('There is no trained adapter yet: train one in the Train step.');
      const params = await trainer.readAdapter();
      if (!params) throw new Error(FULL_RUN_HAS_NO_ADAPTER);
      found = {
        settings: trainer.settings,
        params,
        metrics: this.training?.recorded ?? [],
        step: trainer.stepsCompleted,
      };
      const prepared = this.training?.data ?? null;
      data = prepared && {
        files: this.training?.files ?? [],
        format: prepared.format,
        train: prepared.train,
        validation: prepared.validation,
        unit: prepared.unit,
      };
    } else {
      const kept = await this.keptRun(model, which.run);
      const params = await this.keptAdapter(which);
      const metrics = kept.metrics.filter((m) => m.step <= which.step);
      found = { settings: kept.request.settings, params, metrics, step: which.step };
    }
    const { settings, params, step } = found;
    if (settings.full) throw new Error(FULL_RUN_HAS_NO_ADAPTER);
    const loraSettings = loraSettingsFor(model.config, settings, 0);
    const { modules, rest } = splitLoraVector(loraLayout(model.config, loraSettings), settings.loraR, params);
    const baseModel = baseModelId(model.label);
    return {
      name: exportName(model.label, settings.method, `step${step}`),
      baseModel,
      settings,
      modules,
      scoreHead: settings.method === 'rm' ? rest : undefined,
      data,
      metrics: [...found.metrics],
    };
  }

  /**
   * The adapter as a zip to download: the PEFT folder, its model card and metrics; from this run (as trained so
   * far) or from a kept checkpoint of the run.
   */
  async exportAdapter(which: 'run' | KeptCheckpoint): Promise<Download> {
    const adapter = await this.trainedAdapter(which);
    const files = Object.keys(adapterFolderFiles(adapter));
    return { fileName: `${adapter.name}.zip`, zip: await zipAdapterFolder(adapter), files };
  }

  /**
   * The tuned model as a zip of a model folder in the Hugging Face layout: the adapter folded into the loaded
   * model's weights, or, for a run that trained every weight, those weights (float32).
   */
  async exportMerged(which: 'run' | KeptCheckpoint): Promise<Download> {
    const { device, model } = await this.trainable();
    if (!this.loadedFiles) throw new Error('Load the model in the Model step first.');
    const trainer = which === 'run' ? this.training?.current : null;
    const weights = this.training?.weights;
    if (trainer && !trainer.lora && weights) {
      const { checkpoint, read } = this.loadedFiles;
      const trained = (key: string) => weights.read(device, key, elementCount(checkpoint, key));
      const files = await modelFolderFiles(checkpoint, read, trained, 'F32');
      const name = exportName(model.label, trainer.settings.method, `step${trainer.stepsCompleted}`);
      return { fileName: `${name}.zip`, zip: await zipFolder(name, files), files: [...files.keys()] };
    }
    const adapter = await this.trainedAdapter(which);
    if (adapter.settings.method === 'rm') {
      throw new Error("A reward model's adapter scores answers: export it as an adapter, not merged into the model.");
    }
    const { checkpoint, read } = this.loadedFiles;
    const s = adapter.settings;
    const scale = loraScale({ r: s.loraR, loraAlpha: s.loraAlpha, useRslora: s.rslora });
    const files = await mergedModelFiles(checkpoint, read, { r: s.loraR, scale, modules: adapter.modules });
    const name = `${adapter.name}-merged`;
    return { fileName: `${name}.zip`, zip: await zipFolder(name, files), files: [...files.keys()] };
  }

  /** Ends every answer being generated after its current token. */
  stopGenerating(): void {
    this.stopRequested = true;
  }
}

const FULL_RUN_HAS_NO_ADAPTER =
  'This run trains every weight: it has no adapter to switch on and off or to export as one.';

const REWARD_MODEL_CANNOT_CHAT =
  'This run trains a reward model: it scores answers rather than writing them. Use it as the reward for policy ' +
  'optimization; to chat with a tuned model, train with SFT or DPO.';

export interface GenerateRequest {
  messages: { role: string; content: string }[];
  /** The tuned side's adapter: this run's, an imported folder, or the run's adapter at a kept checkpoint. */
  adapter: 'none' | 'run' | 'imported' | KeptCheckpoint;
  sampling: SamplingSettings;
  maxNewTokens: number;
  seed: number;
  stopStrings?: string[];
}

export interface Download {
  fileName: string;
  zip: Blob;
  /** The files in the zip's folder. */
  files: string[];
}

type TrainedAdapter = Parameters<typeof zipAdapterFolder>[0];

/** A kept run's adapter at one step: the run's ID in the run store and the step. */
export interface KeptCheckpoint {
  run: string;
  step: number;
}

/** A kept run of the loaded model as Compare and Export offer it. */
export interface RunCheckpoints {
  run: string;
  /** When it began (ms since the epoch). */
  started: number;
  method: Method;
  /** Steps with a kept adapter, oldest first. */
  steps: number[];
}

export interface GenerateResult {
  text: string;
  tokens: number;
  tokensPerSecond: number;
  stoppedBy: Generation['stoppedBy'];
}

export interface ImportedAdapterSummary {
  name: string;
  r: number;
  modules: number;
}
