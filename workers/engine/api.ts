import type { AdapterSummary, GpuUnavailableReason } from '../../core/adapter';
import type { BasePrecision } from '../../core/base-precision';
import type { DatasetFile } from '../../core/dataset/read-records';
import type { GgufProgress } from '../../core/export/gguf';
import type { DownloadProgress } from '../../core/hub';
import type { PublishProgress, PublishResult } from '../../core/hub-publish';
import type { ModelConfig } from '../../core/model-config';
import type { Method, TrainSettings } from '../../core/training/settings';
import type { Reply, ReplyOptions } from './chat';
import type { EvalProgress, EvalReport, EvalRequest } from './evaluate';
import type { HubSettings, ModelInfo, ModelSource } from './model-loader';
import type { GgufRequest, PublishRequest } from './run-exports';
import type { SelfTestResult } from './self-test';
import type { RunTiming } from './train/run-timing';
import type { RunListing, TrainEvent, TrainRequest } from './train/training-session';

export type { EvalExample } from '../../core/eval/examples';
export type { GgufDtype, GgufProgress } from '../../core/export/gguf';
export type { PublishProgress, PublishResult } from '../../core/hub-publish';
export type { Contestant, EvalProgress, EvalReport, EvalRequest, EvalRow } from './evaluate';
export type { GgufChoice, GgufKind } from './gguf-export';
export type { GgufRequest, PublishRequest } from './run-exports';
export type { RewardChoice } from './train/reward-choice';

/** The engine worker's answer to "which GPU do I have?": the adapter and a verified kernel run, or why not. */
export type GpuReport =
  | { ok: true; adapter: AdapterSummary; selfTest: SelfTestResult }
  | { ok: false; reason: GpuUnavailableReason; message: string };

export type { DownloadProgress, HubSettings, ModelInfo, ModelSource, RunListing, RunTiming, TrainEvent, TrainRequest };

/** What the UI may ask of the engine worker (exposed with comlink). */
export interface EngineApi {
  gpuReport(): Promise<GpuReport>;
  /** Size, parameters and memory needs of a model, reading only its config (and the weights' size). */
  describeModel(source: ModelSource, hub: HubSettings): Promise<DescribedModel>;
  /**
   * Downloads (or reads from the cache) and puts the model on the GPU, its projections at `base` (the model's
   * default precision when not given); `onProgress` is a comlink proxy.
   */
  loadModel(
    source: ModelSource,
    hub: HubSettings,
    onProgress: (progress: DownloadProgress) => void,
    base?: BasePrecision,
  ): Promise<LoadedModelSummary>;
  /** `listener` (a comlink proxy) hears why, each time the GPU device is lost and the model with it. */
  onDeviceLost(listener: (reason: string) => void): Promise<void>;
  cacheEntries(): Promise<{ key: string; bytes: number }[]>;
  clearCache(prefix?: string): Promise<void>;
  /**
   * Trains the loaded model on dataset files; `onEvent` (a comlink proxy) hears every step. Resolves when the run
   * finishes, pauses, stops or fails; a run that cannot start rejects with every reason.
   */
  startTraining(request: TrainRequest, files: DatasetFile[], onEvent: (e: TrainEvent) => void): Promise<void>;
  /**
   * How long a run would take on this GPU before starting it: prepared as the run is, two of its steps timed (the
   * second counts), times its planned steps, plus validation. Refused with every reason, as starting would be.
   */
  timeRun(request: TrainRequest, files: DatasetFile[]): Promise<RunTiming>;
  /** Ends the run after the current step, checkpointed; `resumeTraining` continues it. */
  pauseTraining(): Promise<void>;
  resumeTraining(onEvent: (e: TrainEvent) => void): Promise<void>;
  /** Ends the run after the current step, keeping the adapter so far. */
  stopTraining(): Promise<void>;
  /** A run an earlier page left (a reload, a crash, a lost GPU), resumable from its checkpoint. */
  savedRun(): Promise<SavedRunSummary | null>;
  resumeSavedRun(onEvent: (e: TrainEvent) => void): Promise<void>;
  discardSavedRun(): Promise<void>;
  /** Every kept run, newest first: settings, data fingerprint, status and metrics, for comparing runs. */
  listRuns(): Promise<RunListing[]>;
  /**
   * The loaded model's kept runs with checkpoint adapters (finished, stopped or paused runs alike), newest first,
   * for the Compare and Export steps.
   */
  checkpoints(): Promise<RunCheckpoints[]>;
  /** This run's adapter, or a kept checkpoint's, as a zip of its PEFT folder, model card and metrics. */
  exportAdapter(which: 'run' | KeptCheckpoint): Promise<Download>;
  /** The same adapter folded into the loaded model: a zip of a model folder in the Hugging Face layout. */
  exportMerged(which: 'run' | KeptCheckpoint): Promise<Download>;
  /** The size of a GGUF of the run (or a kept checkpoint, or the base model), before writing it. */
  ggufBytes(request: GgufRequest): Promise<number>;
  /** That GGUF, zipped with an Ollama Modelfile and a README; `onProgress` (a comlink proxy) hears each tensor. */
  exportGguf(request: GgufRequest, onProgress: (p: GgufProgress) => void): Promise<Download>;
  /** The run's adapter, tuned model or GGUF published to a Hub repo with the Hub settings' token. */
  publish(
    request: PublishRequest,
    hub: HubSettings,
    onProgress: (p: { gguf?: GgufProgress; upload?: PublishProgress }) => void,
  ): Promise<PublishResult>;
  /**
   * Contestants answer the examples and are scored; `onProgress` (a comlink proxy) hears each batch. Contestants
   * marked `other` are `other`'s model, downloaded (or read from the cache) for their turn, its download heard by
   * `onDownload` (a comlink proxy too: proxies cross only as arguments of their own).
   */
  evaluate(
    request: EvalRequest,
    onProgress: (p: EvalProgress) => void,
    other?: { source: ModelSource; hub: HubSettings },
    onDownload?: (p: DownloadProgress) => void,
  ): Promise<EvalReport>;
  stopEvaluating(): Promise<void>;
  /** The evaluation kept with the latest run, or null. */
  keptEvaluation(): Promise<EvalReport | null>;
  /** Puts a PEFT adapter folder a person picked beside the loaded model, for the Compare step. */
  importAdapter(name: string, files: { path: string; file: Blob }[]): Promise<ImportedAdapterSummary>;
  /** One answer, from the base model or a tuned one, streamed through `onText` (a comlink proxy). */
  generate(request: GenerateRequest, onText: (text: string) => void): Promise<GenerateResult>;
  stopGenerating(): Promise<void>;
}

export interface SavedRunSummary {
  model: string;
  settings: TrainSettings;
  step: number;
  files: string[];
}

export interface DescribedModel extends ModelInfo {
  /** The base precision it loads at unless another is picked, on this GPU (defaultBaseOf). */
  defaultBase: BasePrecision;
  /** Whether it fits this GPU's buffer limits at its default base precision. */
  fit: { fits: boolean; reason: string };
}

export interface LoadedModelSummary {
  label: string;
  config: ModelConfig;
  /** Bytes of weights now on the GPU. */
  gpuBytes: number;
  /** The matrices are held at fp16 (on GPUs; CPU adapters keep fp32). Full-parameter runs train an fp32 copy. */
  halfMatrices: boolean;
  /** How the projections are held: 16-bit (as `halfMatrices` says), or quantized for LoRA runs over them. */
  base: BasePrecision;
  tokenizer: { hasChatTemplate: boolean; eosTokenIds: number[] } | null;
  /** Why the tokenizer could not be loaded (the model still trains on token ids). */
  tokenizerError: string | null;
  seconds: number;
}

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

export interface GenerateRequest extends ReplyOptions {
  /** The tuned side's adapter: this run's, an imported folder, or the run's adapter at a kept checkpoint. */
  adapter: 'none' | 'run' | 'imported' | KeptCheckpoint;
}

export type GenerateResult = Reply;

export interface Download {
  fileName: string;
  zip: Blob;
  /** The files in the zip's folder. */
  files: string[];
}

export interface ImportedAdapterSummary {
  name: string;
  r: number;
  modules: number;
}
