import { BASE_PRECISIONS, type BasePrecision } from '../../core/base-precision';
import { type Checkpoint, CheckpointError, loadCheckpoint, type ReadFile } from '../../core/checkpoint';
import { type DownloadProgress, type FileCache, hubFileSize, hubReader } from '../../core/hub';
import { hubErrorKind } from '../../core/hub-errors';
import { type ModelConfig, parseModelConfig } from '../../core/model-config';
import { estimateTrainingMemory, parameterCount, type TrainingMemory } from '../../core/model-memory';
import { loadTokenizer, type ModelTokenizer } from '../../core/tokenizer';

/**
 * Where a model comes from: a Hub repo, a model shipped with the studio (served beside the page, its files
 * listed so a missing optional file is never fetched), or files a person picked or dropped.
 */
export type ModelSource =
  | { kind: 'hub'; repo: string; revision?: string }
  | { kind: 'bundled'; name: string; url: string; files: string[] }
  | { kind: 'files'; name: string; files: { path: string; file: Blob }[] };

export interface HubSettings {
  baseUrl: string;
  token?: string;
}

export interface ModelInfo {
  label: string;
  config: ModelConfig;
  parameters: number;
  /** Bytes of the weights; null when the source does not say. */
  downloadBytes: number | null;
  /** Whether loading downloads the weights (a Hub repo) or reads them from here. */
  downloads: boolean;
  /** For LoRA training at batch 1 × 512 tokens, r = 16 on all projections, at each base precision. */
  memory: Record<BasePrecision, TrainingMemory>;
}

export function sourceLabel(source: ModelSource): string {
  return source.kind === 'hub' ? `hub:${source.repo}${source.revision ? `@${source.revision}` : ''}` : source.name;
}

/** A ReadFile over a model served beside the studio. */
function bundledReader(source: Extract<ModelSource, { kind: 'bundled' }>): ReadFile {
  return async (name) => {
    if (!source.files.includes(name)) return null;
    const response = await fetch(new URL(name, source.url));
    if (!response.ok) throw new Error(`${source.name}/${name}: the studio's server answered HTTP ${response.status}`);
    return response.blob();
  };
}

/** A ReadFile over picked files: the folder's own files by name, wherever the picker rooted the paths. */
export function filesReader(files: { path: string; file: Blob }[]): ReadFile {
  const byName = new Map(files.map(({ path, file }) => [path.split('/').slice(-1)[0], file]));
  return async (name) => byName.get(name) ?? null;
}

export function readerFor(
  source: ModelSource,
  hub: HubSettings,
  cache: FileCache | null,
  onProgress?: (p: DownloadProgress) => void,
): ReadFile {
  if (source.kind === 'files') return filesReader(source.files);
  if (source.kind === 'bundled') return bundledReader(source);
  return hubReader({ ...hub, revision: source.revision }, source.repo, cache, { onProgress });
}

/**
 * Weight bytes of a Hub model without downloading them: the shard index's total, or model.safetensors' size (the
 * cached copy's, else a HEAD request's).
 */
async function hubDownloadBytes(
  source: Extract<ModelSource, { kind: 'hub' }>,
  hub: HubSettings,
  read: ReadFile,
  cache: FileCache | null,
) {
  const index = await read('model.safetensors.index.json');
  if (index) {
    const total = (JSON.parse(await index.text()) as { metadata?: { total_size?: unknown } }).metadata?.total_size;
    if (typeof total === 'number') return total;
  }
  return hubFileSize({ ...hub, revision: source.revision }, source.repo, 'model.safetensors', cache);
}

/**
 * What a person needs to know before downloading: size, parameters, the GPU memory training will take at each base
 * precision (LoRA, with the matrices held at fp16 when `halfMatrices`, as GPUs hold them). A Hub model is read no further than its
 * config.json and shard index (a HEAD request for a single file's size): the weights wait for `loadModelFiles`.
 */
export async function describeModel(
  source: ModelSource,
  hub: HubSettings,
  cache: FileCache | null,
  halfMatrices: boolean,
): Promise<ModelInfo> {
  const label = sourceLabel(source);
  const read = readerFor(source, hub, cache);
  const configBytes = await read('config.json');
  if (!configBytes) throw new CheckpointError(`${label}: no config.json (is this a model folder or repo?)`);
  const config = parseModelConfig(JSON.parse(await configBytes.text()), `${label}/config.json`);
  const downloadBytes =
    source.kind === 'hub'
      ? await hubDownloadBytes(source, hub, read, cache)
      : source.kind === 'files'
        ? source.files.reduce((n, f) => n + (f.path.endsWith('.safetensors') ? f.file.size : 0), 0)
        : ((await read('model.safetensors'))?.size ?? null);
  const parameters = parameterCount(config);
  const memory = Object.fromEntries(
    BASE_PRECISIONS.map((base) => [base, estimateTrainingMemory(config, { halfMatrices, base })]),
  ) as Record<BasePrecision, TrainingMemory>;
  return {
    label,
    config,
    parameters,
    downloadBytes,
    downloads: source.kind === 'hub',
    memory,
  };
}

export interface LoadedModel {
  checkpoint: Checkpoint;
  tokenizer: ModelTokenizer | null;
  tokenizerError: string | null;
}

/**
 * The checkpoint and its tokenizer through the one loader (the CLI reads the same way from disk). A tokenizer that
 * cannot be used leaves the model without one; one the Hub could not be asked for fails the load, to be tried again.
 */
export async function loadModelFiles(read: ReadFile, label: string): Promise<LoadedModel> {
  const checkpoint = await loadCheckpoint(read, label);
  try {
    return { checkpoint, tokenizer: await loadTokenizer(read, label), tokenizerError: null };
  } catch (error) {
    if (hubErrorKind(error) !== null) throw error;
    return { checkpoint, tokenizer: null, tokenizerError: (error as Error).message };
  }
}
