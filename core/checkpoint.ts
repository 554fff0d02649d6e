/**
 * A model or adapter folder in the Hugging Face layout, read through a `ReadFile` so the browser (fetch, OPFS,
 * dropped folders) and the CLI (the file system) share one loader.
 *   model:   config.json + model.safetensors, or model.safetensors.index.json and its shards
 *   adapter: adapter_config.json + adapter_model.safetensors (PEFT LoRA)
 */
import { expectedTensors, type ModelConfig, parseModelConfig } from './model-config';
import {
  type AdapterConfig,
  type LoraModule,
  matchAdapterToModel,
  PeftError,
  parseAdapterConfig,
  type TaskType,
} from './peft';
import {
  openSafetensors,
  parseSafetensors,
  type SafetensorsBlob,
  type SafetensorsFile,
  type TensorInfo,
} from './safetensors';

/**
 * `name` inside the folder as a Blob (file-backed on disk and in the browser's cache, so large checkpoints are
 * read tensor by tensor, never whole), or null when the folder has no such file.
 */
export type ReadFile = (name: string) => Promise<Blob | null>;

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface Checkpoint {
  config: ModelConfig;
  /** Every tensor of every shard, by key. */
  tensors: Map<string, TensorInfo & { file: string }>;
  /** A base weight as float32 (bf16 / fp16 widened exactly), read from its shard when asked for. */
  readFloat32(key: string): Promise<Float32Array>;
}

async function parseJson(blob: Blob, path: string): Promise<unknown> {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await blob.arrayBuffer()));
  } catch (error) {
    throw new CheckpointError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

async function readJson(read: ReadFile, folder: string, name: string): Promise<unknown> {
  const blob = await read(name);
  if (blob === null) throw new CheckpointError(`${folder}: no ${name}`);
  return parseJson(blob, `${folder}/${name}`);
}

async function fileOf(read: ReadFile, folder: string, name: string): Promise<Blob> {
  const blob = await read(name);
  if (blob === null) throw new CheckpointError(`${folder}: no ${name}`);
  return blob;
}

/** The shard file names of a model: the index's weight_map, or the single model.safetensors. */
async function shardNames(read: ReadFile, folder: string): Promise<string[]> {
  const index = await read('model.safetensors.index.json');
  if (index === null) return ['model.safetensors'];
  const json = (await parseJson(index, `${folder}/model.safetensors.index.json`)) as { weight_map?: unknown } | null;
  const map = json?.weight_map;
  if (typeof map !== 'object' || map === null) {
    throw new CheckpointError(`${folder}/model.safetensors.index.json: no weight_map object`);
  }
  const names = new Set<string>();
  for (const [key, file] of Object.entries(map)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('..')) {
      throw new CheckpointError(`${folder}/model.safetensors.index.json: weight_map["${key}"] is not a file name`);
    }
    names.add(file);
  }
  return [...names];
}

/** Reads and checks a model folder: every tensor the architecture needs, with its shape, in a float dtype. */
export async function loadCheckpoint(read: ReadFile, folder: string): Promise<Checkpoint> {
  const config = parseModelConfig(await readJson(read, folder, 'config.json'), `${folder}/config.json`);
  const files = new Map<string, SafetensorsBlob>();
  const tensors = new Map<string, TensorInfo & { file: string }>();
  for (const name of await shardNames(read, folder)) {
    const file = await openSafetensors(await fileOf(read, folder, name), `${folder}/${name}`);
    files.set(name, file);
    for (const [key, info] of file.tensors) tensors.set(key, { ...info, file: name });
  }
  for (const [key, shape] of expectedTensors(config)) {
    const info = tensors.get(key);
    if (!info) {
      throw new CheckpointError(`${folder}: missing tensor ${key} (shape [${shape}]) that ${config.modelType} needs`);
    }
    if (info.shape.join() !== shape.join()) {
      throw new CheckpointError(
        `${folder}/${info.file}: tensor ${key} has shape [${info.shape}], config.json implies [${shape}]`,
      );
    }
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new CheckpointError(`${folder}/${info.file}: tensor ${key} is ${info.dtype}; F32, F16 or BF16 expected`);
    }
  }
  return {
    config,
    tensors,
    async readFloat32(key) {
      const info = tensors.get(key);
      if (!info) throw new CheckpointError(`${folder}: missing tensor ${key}`);
      return (files.get(info.file) as SafetensorsBlob).readFloat32(key);
    },
  };
}

export interface LoadedAdapter {
  config: AdapterConfig;
  /** The adapter's LoRA modules, checked against the model, with their keys in the file. */
  modules: LoraModule[];
  /** A reward model's score head ([1, hidden]); null for a language model's adapter. */
  scoreKey: string | null;
  file: SafetensorsFile;
}

/**
 * Reads a PEFT LoRA adapter folder and checks it fits `model` and the use it is loaded for: a language model's
 * adapter (CAUSAL_LM, or no task) to generate with, or a reward model's (SEQ_CLS, with its score head) to score.
 */
export async function loadAdapter(
  read: ReadFile,
  folder: string,
  model: ModelConfig,
  task: TaskType = 'CAUSAL_LM',
): Promise<LoadedAdapter> {
  const configFile = `${folder}/adapter_config.json`;
  const config = parseAdapterConfig(await readJson(read, folder, 'adapter_config.json'), configFile);
  if (task === 'CAUSAL_LM' && config.taskType === 'SEQ_CLS') {
    throw new PeftError(
      configFile,
      'task_type "SEQ_CLS" is a reward model\'s adapter: it scores answers rather than writing them (use it as a reward)',
    );
  }
  if (task === 'SEQ_CLS' && config.taskType !== 'SEQ_CLS') {
    throw new PeftError(
      configFile,
      `task_type ${JSON.stringify(config.taskType)} is not a reward model's adapter: one has task_type "SEQ_CLS" and ` +
        'a score head (train one with --method rm)',
    );
  }
  // Adapters are small: read whole, so their tensors can be read synchronously.
  const name = 'adapter_model.safetensors';
  const blob = await fileOf(read, folder, name);
  const file = parseSafetensors(new Uint8Array(await blob.arrayBuffer()), `${folder}/${name}`);
  for (const [key, info] of file.tensors) {
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new PeftError(file.source, `tensor "${key}" is ${info.dtype}; F32, F16 or BF16 expected`);
    }
  }
  const { modules, scoreKey } = matchAdapterToModel(model, config, file.tensors, file.source);
  return { config, modules, scoreKey, file };
}
