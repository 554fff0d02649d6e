import { packHalves } from '../../../core/float16';
import {
  expectedTensors,
  type ModelConfig,
  PROJECTIONS,
  type Projection,
  projectionKey,
} from '../../../core/model-config';
import { createStorageBuffer, readConcatenated, uploadBuffer } from '../gpu/buffers';
import type { MatrixFormat } from '../kernels/matmul';
import { type QuantFormat, quantize, quantRefusal, quantWordCount } from '../kernels/quant';

/** A slice of vocabulary rows held in one buffer: rows [first, first + rows). */
export interface VocabChunk {
  first: number;
  rows: number;
  buffer: GPUBuffer;
}

export interface LayerWeights {
  inputNorm: GPUBuffer;
  /** The norm before the MLP: llama's post_attention_layernorm, Gemma's pre_feedforward_layernorm. */
  postNorm: GPUBuffer;
  /** Gemma's norms of the attention's and the MLP's outputs (post_attention_, post_feedforward_layernorm). */
  attnOutNorm: GPUBuffer | null;
  mlpOutNorm: GPUBuffer | null;
  proj: Record<Projection, GPUBuffer>;
  /** q/k/v biases (qwen2), else null. */
  bias: Partial<Record<Projection, GPUBuffer>>;
  /** Per-head q/k RMSNorm weights (qwen3), else null. */
  qNorm: GPUBuffer | null;
  kNorm: GPUBuffer | null;
}

/** Whether a weight is one of Gemma's norms, held on the GPU as 1 + w (its RMSNorms scale by 1 + w). */
function plusOne(config: ModelConfig, key: string): boolean {
  return config.gemma !== null && key.endsWith('norm.weight');
}

/** Supplies a base weight by checkpoint key as float32 (bf16/fp16 checkpoints widened on the way). */
export type TensorSource = (key: string) => Float32Array | Promise<Float32Array>;

/**
 * The base model on the GPU, fp32. Embedding and LM head tables are split by vocabulary rows into chunks no
 * larger than the device's storage-binding limit, since their full size can exceed it (Qwen2.5's embedding is
 * 545 MB in fp32). With tied embeddings the LM head is the embedding's chunks.
 */
export class GpuWeights {
  private constructor(
    readonly config: ModelConfig,
    readonly embed: VocabChunk[],
    readonly lmHead: VocabChunk[],
    readonly layers: LayerWeights[],
    readonly finalNorm: GPUBuffer,
    /** Every buffer under its checkpoint key (the chunked tables under theirs, once per chunk, in order). */
    readonly byKey: Map<string, GPUBuffer[]>,
    /** Matrices (projections, embedding, LM head) held as packed fp16. */
    readonly halfMatrices: boolean,
    /** The projections quantized (quant.ts) in place of fp16 or fp32, or null. */
    readonly base: QuantFormat | null,
  ) {}

  /** How the embedding and LM head tables are stored: 8-bit beside a quantized base. */
  get tableFormat(): MatrixFormat {
    return this.base ? 'q8' : this.halfMatrices ? 'f16' : 'f32';
  }

  /** How the seven projections' W are stored, as the matmuls and gemvs reading them are told. */
  get projectionFormat(): MatrixFormat {
    return this.base ?? (this.halfMatrices ? 'f16' : 'f32');
  }

  /**
   * Options default to the device's limits: `bindingLimit` is the largest buffer a kernel may bind,
   * `vocabChunkBytes` the largest vocabulary chunk (smaller values let tests exercise chunking on tiny models).
   * `halfMatrices` keeps the frozen matrices (projections, embedding, LM head) as fp16, two values per word:
   * half the memory for LoRA training; norms and biases stay fp32, and all arithmetic is fp32. `base` stores the
   * projections quantized instead (and the embedding and LM head tables at 8 bits, a scale a row), each tensor
   * quantized as it is read (never the whole model in float at once).
   */
  static async upload(
    device: GPUDevice,
    config: ModelConfig,
    source: TensorSource,
    options: {
      bindingLimit?: number;
      vocabChunkBytes?: number;
      halfMatrices?: boolean;
      base?: QuantFormat | null;
    } = {},
  ): Promise<GpuWeights> {
    const limit =
      options.bindingLimit ?? Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const chunkBytes = Math.min(limit, options.vocabChunkBytes ?? limit);
    const half = options.halfMatrices ?? false;
    const base = options.base ?? null;
    const elementBytes = half ? 2 : 4;
    const matrix = (values: Float32Array, key: string) => uploadBuffer(device, half ? packHalves(values) : values, key);
    const byKey = new Map<string, GPUBuffer[]>();
    const shapes = expectedTensors(config);
    // A projection [out, in] quantized as it is read.
    const quantized = (values: Float32Array, key: string, [out, inDim]: number[], format: QuantFormat) => {
      const refusal = quantRefusal(format, inDim);
      if (refusal) throw new Error(`tensor ${key}: ${refusal}; pick another base precision`);
      return uploadBuffer(device, quantize(values, out, inDim, format), key);
    };
    // One tensor at a time: read, check, upload, let go.
    const load = async (key: string, isMatrix = false) => {
      const read = await source(key);
      const data = plusOne(config, key) ? read.map((w) => 1 + w) : read;
      const expected = shapes.get(key);
      const count = expected?.reduce((a, b) => a * b, 1);
      if (count !== undefined && data.length !== count) {
        throw new Error(`tensor ${key}: ${data.length} values, expected ${count} for shape [${expected?.join(', ')}]`);
      }
      // A projection's [out, in] where the base is quantized.
      const dims = isMatrix && base ? expected : undefined;
      const bytes =
        dims && base
          ? quantWordCount(base, dims[0], dims[1]) * 4
          : isMatrix
            ? data.length * elementBytes
            : data.byteLength;
      if (bytes > limit) {
        throw new Error(`tensor ${key} needs ${bytes} bytes, over this GPU's ${limit}-byte buffer binding limit`);
      }
      const buffer =
        dims && base
          ? quantized(data, key, dims, base)
          : isMatrix
            ? matrix(data, key)
            : uploadBuffer(device, data, key);
      byKey.set(key, [buffer]);
      return buffer;
    };
    // With a quantized base the tables are 8-bit too, a scale word a row: each chunk a [rows, d] q8 matrix.
    const rowBytes = (d: number) => (base ? d + 4 : d * elementBytes);
    const chunks = async (key: string): Promise<VocabChunk[]> => {
      const table = await source(key);
      const { vocabSize: vocab, hiddenSize: d } = config;
      if (table.length !== vocab * d) throw new Error(`tensor ${key}: ${table.length} values, expected ${vocab * d}`);
      const rowsPerChunk = Math.floor(chunkBytes / rowBytes(d));
      if (rowsPerChunk === 0) {
        throw new Error(`tensor ${key}: one row (${rowBytes(d)} bytes) is over the ${limit}-byte binding limit`);
      }
      const list: VocabChunk[] = [];
      for (let first = 0; first < vocab; first += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, vocab - first);
        const values = table.subarray(first * d, (first + rows) * d);
        const buffer = base ? quantized(values, key, [rows, d], 'q8') : matrix(values, key);
        list.push({ first, rows, buffer });
      }
      byKey.set(
        key,
        list.map((c) => c.buffer),
      );
      return list;
    };

    const embed = await chunks('model.embed_tokens.weight');
    const lmHead = config.tieWordEmbeddings ? embed : await chunks('lm_head.weight');
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}`;
      const proj = {} as Record<Projection, GPUBuffer>;
      for (const name of PROJECTIONS) proj[name] = await load(projectionKey(l, name), true);
      const bias: LayerWeights['bias'] = {};
      if (config.attentionBias) {
        for (const name of ['q_proj', 'k_proj', 'v_proj'] as const)
          bias[name] = await load(`${p}.self_attn.${name}.bias`);
      }
      const gemma = config.gemma !== null;
      layers.push({
        inputNorm: await load(`${p}.input_layernorm.weight`),
        postNorm: await load(`${p}.${gemma ? 'pre_feedforward' : 'post_attention'}_layernorm.weight`),
        attnOutNorm: gemma ? await load(`${p}.post_attention_layernorm.weight`) : null,
        mlpOutNorm: gemma ? await load(`${p}.post_feedforward_layernorm.weight`) : null,
        proj,
        bias,
        qNorm: config.qkNorm ? await load(`${p}.self_attn.q_norm.weight`) : null,
        kNorm: config.qkNorm ? await load(`${p}.self_attn.k_norm.weight`) : null,
      });
    }
    const finalNorm = await load('model.norm.weight');
    return new GpuWeights(config, embed, lmHead, layers, finalNorm, byKey, half, base);
  }

  /** Zero-filled buffers shaped like every weight, under the same keys (full-parameter gradients, Adam moments). */
  zerosLike(device: GPUDevice, label: string): Map<string, GPUBuffer[]> {
    const out = new Map<string, GPUBuffer[]>();
    for (const [key, buffers] of this.byKey) {
      out.set(
        key,
        buffers.map((b) => createStorageBuffer(device, b.size, `${label} ${key}`)),
      );
    }
    return out;
  }

  /**
   * A weight's `length` values read back as float32 (fp32 uploads only): after full-parameter training, the trained
   * weight.
   */
  async read(device: GPUDevice, key: string, length: number): Promise<Float32Array> {
    if (this.halfMatrices || this.base) {
      throw new Error(`the weights are held as ${this.base ?? 'fp16'} for LoRA training; they were not trained`);
    }
    const buffers = this.byKey.get(key);
    if (!buffers) throw new Error(`no weight ${key} on the GPU`);
    const values = await readConcatenated(device, buffers, length);
    return plusOne(this.config, key) ? values.map((w) => w - 1) : values;
  }

  /** Total bytes held on the GPU. */
  get byteLength(): number {
    let total = 0;
    for (const buffers of this.byKey.values()) for (const b of buffers) total += b.size;
    return total;
  }

  destroy(): void {
    for (const buffers of this.byKey.values()) for (const b of buffers) b.destroy();
  }
}
