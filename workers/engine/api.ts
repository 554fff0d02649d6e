import type { AdapterSummary, GpuUnavailableReason } from '../../core/adapter';
import type { DownloadProgress } from '../../core/hub';
import type { HubSettings, ModelInfo, ModelSource } from './model-loader';
import type { SelfTestResult } from './self-test';
import type { DescribedModel, LoadedModelSummary } from './session';

/** The engine worker's answer to "which GPU do I have?": the adapter and a verified kernel run, or why not. */
export type GpuReport =
  | { ok: true; adapter: AdapterSummary; selfTest: SelfTestResult }
  | { ok: false; reason: GpuUnavailableReason; message: string };

export type { DescribedModel, DownloadProgress, HubSettings, LoadedModelSummary, ModelInfo, ModelSource };

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
}
