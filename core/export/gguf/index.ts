/**
 * GGUF export for llama.cpp, Ollama and LM Studio: a model (optionally with an adapter folded in) or an adapter on
 * its own, planned from shapes and types alone and written as a stream of chunks (format.ts). The browser's worker
 * and `hone export` share it:
 *
 *   const plan = await modelGgufPlan(checkpoint, read, { dtype: 'f16', name, source, adapter });
 *   for await (const chunk of ggufChunks(plan, { onProgress })) await sink(chunk);
 */
import type { Checkpoint, ReadFile } from '../../checkpoint';
import type { MergeAdapter } from '../merge';
import { type GgufMetadata, type GgufPlan, gguf } from './format';
import { architectureMetadata, type GgufDtype, ggufArchitecture, modelTensors, quantizationVersion } from './model';
import { type GgufTokenizerInfo, ggufTokenizer } from './tokenizer';

export {
  GGUF_ALIGNMENT,
  GgufError,
  type GgufLayout,
  type GgufMetadata,
  type GgufPlan,
  type GgufProgress,
  type GgufTensor,
  type GgufValue,
  type GgufWriteOptions,
  ggufChunks,
  ggufLayout,
  ggufStream,
  writeGguf,
} from './format';
export { type GgufLoraDtype, type LoraGgufOptions, loraGgufPlan, mergeAdapterOf } from './lora';
export { FILE_TYPES, type GgufDtype, ggufTensorName, permuteRows } from './model';
export { GgmlType } from './quantize';
export { GgufTokenizerError } from './tokenizer';

export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0'];

export interface ModelGgufOptions {
  dtype: GgufDtype;
  /** general.name */
  name: string;
  /** The model folder as errors name it. */
  source: string;
  /** Folded into the weights (W + scale · B · A) before they are written. */
  adapter?: MergeAdapter | null;
}

export interface ModelGgufPlan extends GgufPlan {
  tokenizer: Omit<GgufTokenizerInfo, 'metadata'>;
}

/**
 * The GGUF plan of a checkpoint: general and architecture metadata, the tokenizer's (from the folder's
 * tokenizer.json and config files, read through `read`), and every tensor, read when written.
 */
export async function modelGgufPlan(
  checkpoint: Checkpoint,
  read: ReadFile,
  options: ModelGgufOptions,
): Promise<ModelGgufPlan> {
  const { config } = checkpoint;
  if (config.ropeScaling && config.modelType !== 'llama') {
    // llama.cpp's converter writes Llama 3 scaling's factors for the llama architecture only.
    throw new Error(
      `${options.source}/config.json: Llama 3 rope scaling on a ${config.modelType} model cannot be written as GGUF`,
    );
  }
  // The architecture first: a model llama.cpp cannot run is refused whatever its tokenizer.
  const architecture = ggufArchitecture(config, options.source);
  const tokenizer = await ggufTokenizer(read, options.source, config.vocabSize);
  const metadata: GgufMetadata = new Map();
  metadata.set('general.architecture', gguf.string(architecture));
  metadata.set('general.type', gguf.string('model'));
  metadata.set('general.name', gguf.string(options.name));
  for (const entries of [architectureMetadata(config, options.dtype), quantizationVersion(), tokenizer.metadata]) {
    for (const [key, value] of entries) metadata.set(key, value);
  }
  metadata.set('general.alignment', gguf.u32(32));
  const { metadata: _, ...about } = tokenizer;
  return { metadata, tensors: modelTensors(checkpoint, options.dtype, options.adapter ?? null), tokenizer: about };
}
