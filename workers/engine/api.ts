import type { AdapterSummary, GpuUnavailableReason } from '../../core/adapter';
import type { DatasetFile } from '../../core/dataset/read-records';
import type { DownloadProgress } from '../../core/hub';
import type { TrainSettings } from '../../core/training/settings';
import type { HubSettings, ModelInfo, ModelSource } from './model-loader';
import type { SelfTestResult } from './self-test';
import type {
  DescribedModel,
  Download,
  GenerateRequest,
  GenerateResult,
  ImportedAdapterSummary,
  KeptCheckpoint,
  LoadedModelSummary,
  RunCheckpoints,
} from './session';
import type { RunTiming } from './train/run-timing';
import type { RunListing, TrainEvent, TrainRequest } from './train/training-session';

/** The engine worker's answer to "which GPU do I have?": the adapter and a verified kernel run, or why not. */
export type GpuReport =
  | { ok: true; adapter: AdapterSummary; selfTest: SelfTestResult }
  | { ok: false; reason: GpuUnavailableReason; message: string };

export type {
  DescribedModel,
  Download,
  DownloadProgress,
  GenerateRequest,
  GenerateResult,
  HubSettings,
  ImportedAdapterSummary,
  KeptCheckpoint,
  LoadedModelSummary,
  ModelInfo,
  ModelSource,
  RunCheckpoints,
  RunListing,
  RunTiming,
  TrainEvent,
  TrainRequest,
};

/** What the UI may ask of the engine worker (exposed with comlink). */
export interface EngineApi {
  gpuReport(): Promise<GpuReport>;
  /** Size, parameters and memory needs of a model, reading only its config (and the weights' size). */
  describeModel(source: ModelSource, hub: HubSettings): Promise<DescribedModel>;
  /** Downloads (or reads from the cache) and puts the model on the GPU; `onProgress` is a comlink proxy. */
  loadModel(
    source: ModelSource,
    hub: HubSettings,
    onProgress: (progress: DownloadProgress) => void,
  ): Promise<LoadedModelSummary>;
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
