import type { DownloadProgress, FileCache } from '../../core/hub';
import { checkFit } from '../../core/model-memory';
import { acquireGpu, type Gpu } from './gpu/device';
import { GpuWeights } from './model/weights';
import {
  describeModel,
  type HubSettings,
  loadModelFiles,
  type ModelInfo,
  type ModelSource,
  readerFor,
} from './model-loader';

export interface DescribedModel extends ModelInfo {
  fit: { fits: boolean; reason: string };
}

export interface LoadedModelSummary {
  info: ModelInfo;
  /** Bytes of weights now on the GPU. */
  gpuBytes: number;
  tokenizer: { hasChatTemplate: boolean; eosTokenIds: number[] } | null;
  /** Why the tokenizer could not be loaded (the model still trains on token ids). */
  tokenizerError: string | null;
  seconds: number;
}

/**
 * What the engine worker holds between calls: the GPU device and the loaded model. Loading a model replaces
 * (and frees) the previous one.
 */
export class EngineSession {
  private gpu: Gpu | null = null;
  private weights: GpuWeights | null = null;

  constructor(
    private readonly gpuApi: GPU | undefined,
    private readonly cache: FileCache | null,
  ) {}

  private async device(): Promise<Gpu> {
    if (!this.gpu) {
      this.gpu = await acquireGpu(this.gpuApi);
      this.gpu.device.lost.then(() => {
        this.gpu = null;
        this.weights = null;
      });
    }
    return this.gpu;
  }

  /** The model's facts, with whether it fits this GPU's limits. */
  async describe(source: ModelSource, hub: HubSettings): Promise<DescribedModel> {
    const info = await describeModel(source, hub, this.cache);
    const { device } = await this.device();
    return { ...info, fit: checkFit(info.memory, device.limits) };
  }

  async load(
    source: ModelSource,
    hub: HubSettings,
    onProgress: (p: DownloadProgress) => void,
  ): Promise<LoadedModelSummary> {
    const started = performance.now();
    const info = await describeModel(source, hub, this.cache);
    const model = await loadModelFiles(readerFor(source, hub, this.cache, onProgress), info.label);
    const { device } = await this.device();
    this.weights?.destroy();
    this.weights = null;
    this.weights = await GpuWeights.upload(device, model.checkpoint.config, (key) => model.checkpoint.readFloat32(key));
    return {
      info,
      gpuBytes: this.weights.byteLength,
      tokenizer: model.tokenizer
        ? { hasChatTemplate: model.tokenizer.hasChatTemplate, eosTokenIds: model.tokenizer.eosTokenIds }
        : null,
      tokenizerError: model.tokenizerError,
      seconds: (performance.now() - started) / 1000,
    };
  }
}
