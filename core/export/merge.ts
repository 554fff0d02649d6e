/**
 * Model folders in the Hugging Face layout: a merged model (the adapter folded into the base weights,
 * W' = W + s · B · A, in float32 from the checkpoint's own values, written in the checkpoint's dtypes), or a model
 * trained weight by weight (kept float32). Either comes with the checkpoint's config and tokenizer files, and loads
 * with `AutoModelForCausalLM.from_pretrained`, no PEFT needed.
 */
import type { Checkpoint, ReadFile } from '../checkpoint';
import { bfloat16Bits, halfBits } from '../float16';
import { type PROJECTIONS, projectionKey } from '../model-config';
import { serializeSafetensors, type WritableTensor } from '../safetensors';

export interface MergeAdapter {
  r: number;
  /** PEFT's scale: alpha / r, or alpha / √r with rsLoRA. */
  scale: number;
  /** Each module's A ([r, in]) and B ([out, r]), keyed `${layer}.${projection}`. */
  modules: Map<string, { A: Float32Array; B: Float32Array }>;
}

/** The files a model folder carries besides its weights, copied as they are. */
const COPIED = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
];

/** Shards stay under this many bytes by default, as `save_pretrained(max_shard_size=...)` keeps them. */
const MAX_SHARD_BYTES = 1 << 30;

/** W [out, in] += scale · B [out, r] · A [r, in], in place. */
export function foldLora(w: Float32Array, a: Float32Array, b: Float32Array, r: number, scale: number): void {
  const inDim = a.length / r;
  const out = b.length / r;
  if (w.length !== out * inDim) throw new Error(`a [${out}, ${r}] · [${r}, ${inDim}] update does not fit ${w.length}`);
  for (let o = 0; o < out; o++) {
    const row = o * inDim;
    for (let k = 0; k < r; k++) {
      const coefficient = scale * b[o * r + k];
      if (coefficient === 0) continue;
      const ak = k * inDim;
      for (let i = 0; i < inDim; i++) w[row + i] += coefficient * a[ak + i];
    }
  }
}

function encode(values: Float32Array, dtype: string, shape: readonly number[]): WritableTensor {
  if (dtype === 'BF16') return { dtype, shape, data: Uint16Array.from(values, bfloat16Bits) };
  if (dtype === 'F16') return { dtype, shape, data: Uint16Array.from(values, halfBits) };
  return { dtype: 'F32', shape, data: values };
}

/** How many values a checkpoint tensor holds. */
export function elementCount(checkpoint: Checkpoint, key: string): number {
  const info = checkpoint.tensors.get(key);
  if (!info) throw new Error(`the checkpoint has no tensor ${key}`);
  return info.shape.reduce((a, b) => a * b, 1);
}

export interface FolderOptions {
  onTensor?: (done: number, total: number) => void;
  maxShardBytes?: number;
}

/** The merged model's files by name (see modelFolderFiles). */
export function mergedModelFiles(
  checkpoint: Checkpoint,
  read: ReadFile,
  adapter: MergeAdapter,
  options: FolderOptions = {},
): Promise<Map<string, Blob>> {
  const adapted = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (const [slot, module] of adapter.modules) {
    const [layer, projection] = slot.split('.') as [string, (typeof PROJECTIONS)[number]];
    adapted.set(projectionKey(Number(layer), projection), module);
  }
  const merged = async (key: string) => {
    const values = await checkpoint.readFloat32(key);
    const module = adapted.get(key);
    if (module) foldLora(values, module.A, module.B, adapter.r, adapter.scale);
    return values;
  };
  return modelFolderFiles(checkpoint, read, merged, 'checkpoint', options);
}

/**
 * A model folder's files by name: each of the checkpoint's tensors with the values `weight` gives for it, stored in
 * the checkpoint's dtype or float32 (one safetensors file, or shards with their index), and the config and
 * tokenizer files `read` finds. `onTensor` hears each tensor as it is done.
 */
export async function modelFolderFiles(
  checkpoint: Checkpoint,
  read: ReadFile,
  weight: (key: string) => Promise<Float32Array>,
  dtype: 'checkpoint' | 'F32',
  options: FolderOptions = {},
): Promise<Map<string, Blob>> {
  const maxShardBytes = options.maxShardBytes ?? MAX_SHARD_BYTES;
  const shards: Map<string, WritableTensor>[] = [new Map()];
  let shardBytes = 0;
  let done = 0;
  for (const [key, info] of checkpoint.tensors) {
    const values = await weight(key);
    const tensor = encode(values, dtype === 'F32' ? 'F32' : info.dtype, info.shape);
    if (shardBytes > 0 && shardBytes + tensor.data.byteLength > maxShardBytes) {
      shards.push(new Map());
      shardBytes = 0;
    }
    (shards.at(-1) as Map<string, WritableTensor>).set(key, tensor);
    shardBytes += tensor.data.byteLength;
    options.onTensor?.(++done, checkpoint.tensors.size);
  }
  const files = new Map<string, Blob>();
  const format = { format: 'pt' };
  if (shards.length === 1) {
    files.set('model.safetensors', new Blob([serializeSafetensors(shards[0], format)]));
  } else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((shard, i) => {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      for (const [key, tensor] of shard) {
        weightMap[key] = name;
        total += tensor.data.byteLength;
      }
      files.set(name, new Blob([serializeSafetensors(shard, format)]));
    });
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    files.set('model.safetensors.index.json', new Blob([`${JSON.stringify(index, null, 2)}\n`]));
  }
  for (const name of COPIED) {
    const file = await read(name);
    if (file) files.set(name, file);
  }
  return files;
}
