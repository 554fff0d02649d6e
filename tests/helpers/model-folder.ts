import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectedTensors, type ModelConfig, parseModelConfig, serializeModelConfig } from '../../core/model-config';
import { serializeAdapter } from '../../core/peft';
import { randomUniform } from '../../core/random';
import { serializeSafetensors, type WritableTensor } from '../../core/safetensors';
import { randomLora, tensorDraw } from '../../workers/engine/reference/random-model';
import type { ReferenceLora } from '../../workers/engine/reference/transformer.cpu';
import { LLAMA32_1B } from '../fixtures/hub-configs';

/** A fresh temporary folder. */
export function tempDir(prefix = 'hone-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** bf16 bits of a float32 value, truncated: exact when the value already is a bf16 number. */
function toBf16Bits(values: ArrayLike<number>): Uint16Array {
  const u32 = new Uint32Array(Float32Array.from(values).buffer);
  const out = new Uint16Array(u32.length);
  for (let i = 0; i < u32.length; i++) out[i] = u32[i] >>> 16;
  return out;
}

/** Rounds values to the nearest bf16 (toward zero), so a bf16 file and an fp32 reference hold the same numbers. */
export function roundToBf16(values: Float64Array): Float64Array {
  const u32 = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < u32.length; i++) u32[i] &= 0xffff0000;
  return Float64Array.from(new Float32Array(u32.buffer));
}

/**
 * `tokenizer` files (name → text) written into the model `folder`, then the folder's config, weights and tokenizer
 * files as a Hub stand-in serves them (name → bytes).
 */
export async function hubModelFiles(
  folder: string,
  tokenizer: Record<string, string>,
): Promise<Map<string, Uint8Array>> {
  for (const [name, text] of Object.entries(tokenizer)) await writeFile(join(folder, name), text);
  const files = new Map<string, Uint8Array>();
  for (const name of ['config.json', 'model.safetensors', ...Object.keys(tokenizer)]) {
    files.set(name, new Uint8Array(await readFile(join(folder, name))));
  }
  return files;
}

/** Writes a model folder in the Hugging Face layout: config.json + model.safetensors (F32 or BF16). */
export async function writeModelFolder(
  dir: string,
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  dtype: 'F32' | 'BF16' = 'F32',
): Promise<string> {
  const shapes = expectedTensors(config);
  const tensors = new Map<string, WritableTensor>();
  for (const [key, data] of weights) {
    const shape = shapes.get(key) ?? [data.length];
    tensors.set(
      key,
      dtype === 'F32' ? { dtype, shape, data: Float32Array.from(data) } : { dtype, shape, data: toBf16Bits(data) },
    );
  }
  return writeTensorsFolder(dir, config, tensors);
}

/** config.json and model.safetensors holding `tensors`, written into `dir`. */
async function writeTensorsFolder(
  dir: string,
  config: ModelConfig,
  tensors: Map<string, WritableTensor>,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), serializeModelConfig(config));
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
  return dir;
}

/**
 * Llama 3.2 1B's layers (hidden 2048, intermediate 8192, 32 query heads over 8 of 64, llama3 rope), two of them,
 * over a vocabulary of 300: a model of a real width that a software adapter still trains a step of in seconds.
 */
export function llama1bLayersConfig(): ModelConfig {
  return { ...parseModelConfig(LLAMA32_1B), numLayers: 2, vocabSize: 300 };
}

/**
 * Writes a BF16 model folder of randomWeights(config, seed)'s values (truncated to bf16), one tensor at a time:
 * for models too large to hold in float64.
 */
export async function writeRandomBf16Folder(dir: string, config: ModelConfig, seed: number): Promise<string> {
  const tensors = new Map<string, WritableTensor>();
  for (const [key, shape] of expectedTensors(config)) {
    const draw = tensorDraw(key, shape, seed);
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = draw();
    tensors.set(key, { dtype: 'BF16', shape, data: toBf16Bits(values) });
  }
  return writeTensorsFolder(dir, config, tensors);
}

/** PEFT's files of `lora` for `targets`; with `scoreHead`, a reward model's (SEQ_CLS, its score head beside). */
function adapterFiles(lora: ReferenceLora, targets: string[], scoreHead?: Float32Array) {
  return serializeAdapter(
    {
      r: lora.rank,
      loraAlpha: lora.alpha,
      loraDropout: 0,
      targetModules: targets,
      useRslora: lora.useRslora,
      layersToTransform: null,
      baseModelNameOrPath: 'hone/tiny-test',
    },
    new Map([...lora.modules].map(([key, { A, B }]) => [key, { A: Float32Array.from(A), B: Float32Array.from(B) }])),
    scoreHead,
  );
}

/** Writes a PEFT adapter folder holding `lora` for `targets`. */
export async function writeAdapterFolder(dir: string, lora: ReferenceLora, targets: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const files = adapterFiles(lora, targets);
  await writeFile(join(dir, 'adapter_config.json'), files['adapter_config.json']);
  await writeFile(join(dir, 'adapter_model.safetensors'), files['adapter_model.safetensors']);
  return dir;
}

/** A random reward model's PEFT files for a model: LoRA on q and v, and a score head. */
export function randomRewardModel(
  config: ModelConfig,
  seed: number,
): { path: string; bytes: Uint8Array<ArrayBuffer> }[] {
  const lora = randomLora(config, ['q_proj', 'v_proj'], 2, 4, false, seed);
  const files = adapterFiles(lora, ['q_proj', 'v_proj'], randomUniform(config.hiddenSize, seed + 1, -1, 1));
  return Object.entries(files).map(([path, data]) => ({
    path,
    bytes: typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data),
  }));
}
