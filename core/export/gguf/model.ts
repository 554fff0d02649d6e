/**
 * A llama / qwen2 / qwen3 / gemma3 checkpoint as llama.cpp's converter (convert_hf_to_gguf.py LlamaModel,
 * Qwen2Model, Qwen3Model, Gemma3Model) writes it: the architecture's hyperparameters under llama.cpp's keys, the
 * tensors under llama.cpp's names, each PyTorch [out, in] matrix stored as ggml dims [in, out] (the same bytes),
 * llama's q and k rows permuted from Hugging Face's rotate-half layout back to interleaved pairs (LlamaModel.permute;
 * qwen and gemma keep rotate-half), for Llama 3 rope scaling the `rope_freqs.weight` factors
 * (LlamaModel.generate_extra_tensors), and Gemma's norms stored as 1 + w (llama.cpp multiplies by the weight). An
 * adapter is folded in with merge.ts's foldLora before the permutation, as the merged folder would hold it.
 */
import type { Checkpoint } from '../../checkpoint';
import { expectedTensors, type ModelConfig, PROJECTIONS, type Projection, projectionKey } from '../../model-config';
import { foldLora, type MergeAdapter } from '../merge';
import { type GgufMetadata, type GgufTensor, gguf } from './format';
import { fitsType, GgmlType } from './quantize';

export type GgufDtype = 'f32' | 'f16' | 'q8_0';

/** llama.cpp's LlamaFileType for each output type (general.file_type). */
export const FILE_TYPES: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7 };

const DTYPE_TYPES: Record<GgufDtype, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0 };

/** GGML_QUANT_VERSION, written by the converter into every file. */
const QUANT_VERSION = 2;

/**
 * llama.cpp's architecture name; a Gemma 3 model whose layout llama.cpp cannot run is refused (gemmaRefusal), naming
 * the model folder `source` where given.
 */
export function ggufArchitecture(config: ModelConfig, source?: string): string {
  if (!config.gemma) return config.modelType;
  const refusal = gemmaRefusal(config);
  const file = source ? `${source}/config.json` : 'config.json';
  if (refusal) throw new Error(`${file}: ${refusal}, so llama.cpp would run a different model`);
  return 'gemma3';
}

/** Layers between global ones in llama.cpp's Gemma 3 (hparams.set_swa_pattern(6): layer l global when l % 6 = 5). */
const LLAMA_CPP_GEMMA_PATTERN = 6;
/** llama.cpp's rotary base on Gemma 3's local layers (rope_freq_base_train_swa). */
const LLAMA_CPP_GEMMA_LOCAL_THETA = 10_000;

/**
 * What llama.cpp fixes for Gemma 3 rather than reads from the file, where this model differs: which layers slide,
 * the local layers' rotary base, and the score scale (1/√head_dim; 1/√(hidden / heads) for 62 layers, the 27B).
 */
export function gemmaRefusal(config: ModelConfig): string | null {
  const gemma = config.gemma as NonNullable<ModelConfig['gemma']>;
  const global = gemma.slidingLayers.flatMap((sliding, l) => (sliding ? [] : [l]));
  const expected = gemma.slidingLayers.flatMap((_, l) =>
    l % LLAMA_CPP_GEMMA_PATTERN === LLAMA_CPP_GEMMA_PATTERN - 1 ? [l] : [],
  );
  if (global.join() !== expected.join()) {
    return (
      `layer_types makes layers [${global.join(', ')}] global; llama.cpp runs Gemma 3 with every sixth layer ` +
      `global ([${expected.join(', ')}] here)`
    );
  }
  if (gemma.localRopeTheta !== LLAMA_CPP_GEMMA_LOCAL_THETA) {
    return `the local layers' rope_theta is ${gemma.localRopeTheta}; llama.cpp uses ${LLAMA_CPP_GEMMA_LOCAL_THETA}`;
  }
  const scaled = config.numLayers === 62 ? config.hiddenSize / config.numHeads : config.headDim;
  if (gemma.queryPreAttnScalar !== scaled) {
    return `query_pre_attn_scalar is ${gemma.queryPreAttnScalar}; llama.cpp scales this model's attention by 1/√${scaled}`;
  }
  return null;
}

/** `{arch}.*` hyperparameters, in the order the converter writes them (TextModel + LlamaModel.set_gguf_parameters). */
export function architectureMetadata(config: ModelConfig, dtype: GgufDtype | null): GgufMetadata {
  const arch = ggufArchitecture(config);
  const m: GgufMetadata = new Map();
  m.set(`${arch}.block_count`, gguf.u32(config.numLayers));
  m.set(`${arch}.context_length`, gguf.u32(config.maxPositionEmbeddings));
  m.set(`${arch}.embedding_length`, gguf.u32(config.hiddenSize));
  m.set(`${arch}.feed_forward_length`, gguf.u32(config.intermediateSize));
  m.set(`${arch}.attention.head_count`, gguf.u32(config.numHeads));
  m.set(`${arch}.attention.head_count_kv`, gguf.u32(config.numKvHeads));
  m.set(`${arch}.rope.freq_base`, gguf.f32(config.ropeTheta));
  m.set(`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(config.rmsNormEps));
  // The converter writes these when config.json has head_dim (Hone's own configs always do); llama.cpp reads them
  // in place of embedding_length / head_count, which qwen3's head_dim differs from.
  m.set(`${arch}.attention.key_length`, gguf.u32(config.headDim));
  m.set(`${arch}.attention.value_length`, gguf.u32(config.headDim));
  if (dtype !== null) m.set('general.file_type', gguf.u32(FILE_TYPES[dtype]));
  if (config.modelType === 'llama') {
    m.set(`${arch}.vocab_size`, gguf.u32(config.vocabSize));
    m.set(`${arch}.rope.dimension_count`, gguf.u32(config.headDim));
  }
  if (config.gemma) m.set(`${arch}.attention.sliding_window`, gguf.u32(config.gemma.slidingWindow));
  return m;
}

/** The converter's closing key. */
export function quantizationVersion(): GgufMetadata {
  return new Map([['general.quantization_version', gguf.u32(QUANT_VERSION)]]);
}

/**
 * llama.cpp's name of a Hugging Face checkpoint key (gguf-py's tensor_mapping for these architectures); Gemma's
 * post_attention_layernorm norms the attention's output, where llama's norms the MLP's input.
 */
export function ggufTensorName(config: ModelConfig, key: string): string {
  if (key === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (key === 'model.norm.weight') return 'output_norm.weight';
  if (key === 'lm_head.weight') return 'output.weight';
  const match = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(key);
  const part = match && ((config.gemma && GEMMA_LAYER_PARTS[match[2]]) || LAYER_PARTS[match[2]]);
  if (!match || !part) throw new Error(`no GGUF name for tensor ${key}`);
  return `blk.${match[1]}.${part}.${match[3]}`;
}

const GEMMA_LAYER_PARTS: Record<string, string> = {
  post_attention_layernorm: 'post_attention_norm',
  pre_feedforward_layernorm: 'ffn_norm',
  post_feedforward_layernorm: 'post_ffw_norm',
};

const LAYER_PARTS: Record<string, string> = {
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'self_attn.q_norm': 'attn_q_norm',
  'self_attn.k_norm': 'attn_k_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/**
 * LlamaModel.permute: rows [heads, 2, hd / 2] → [heads, hd / 2, 2], i.e. within each head, row 2i + s of the result
 * is row s·hd/2 + i of the input (the two rotate-half halves interleaved into llama.cpp's adjacent pairs). `values`
 * holds `rows` rows of `rowLength`; a new array is returned.
 */
export function permuteRows(values: Float32Array, heads: number, rowLength: number): Float32Array {
  const rows = values.length / rowLength;
  if (!Number.isInteger(rows) || rows % (2 * heads) !== 0) {
    throw new Error(`cannot permute ${rows} rows into ${heads} heads of pairs`);
  }
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * headDim + s * half + i) * rowLength;
        const to = (h * headDim + 2 * i + s) * rowLength;
        out.set(values.subarray(from, from + rowLength), to);
      }
    }
  }
  return out;
}

/** The heads a llama q or k projection's rows are permuted by; null for every other tensor (and for qwen, gemma). */
export function permutedHeads(config: ModelConfig, projection: Projection): number | null {
  if (config.modelType !== 'llama') return null;
  if (projection === 'q_proj') return config.numHeads;
  if (projection === 'k_proj') return config.numKvHeads;
  return null;
}

/**
 * The converter's type for a tensor (ModelBase.prepare_tensors): 1-D tensors and norms F32; the rest the output
 * type, except Q8_0 rows that are not whole 32-value blocks, which fall back to F16.
 */
export function tensorType(name: string, dims: number[], dtype: GgufDtype): GgmlType {
  if (dims.length <= 1 || name.endsWith('_norm.weight') || !/\.(weight|lora_a|lora_b)$/.test(name)) {
    return GgmlType.F32;
  }
  const type = DTYPE_TYPES[dtype];
  return fitsType(type, dims[0]) ? type : GgmlType.F16;
}

/** LlamaModel.generate_extra_tensors: the Llama 3 rope factors, [headDim / 2], as float32. */
export function ropeFactors(config: ModelConfig): Float32Array | null {
  const scaling = config.ropeScaling;
  if (config.modelType !== 'llama' || scaling === null) return null;
  const dim = config.headDim;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  const factors = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    // torch: 1.0 / (base ** (arange(0, dim, 2, float32) / dim)), all float32
    const freq = Math.fround(1 / Math.fround(config.ropeTheta ** Math.fround((2 * i) / dim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) factors[i] = 1;
    else if (wavelen > lowFreqWavelen) factors[i] = factor;
    else {
      const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      factors[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return factors;
}

/** Which projection (and layer) a checkpoint key is the weight of; null for any other tensor. */
function projectionOf(key: string): { layer: number; projection: Projection } | null {
  const match = /^model\.layers\.(\d+)\./.exec(key);
  if (!match) return null;
  const layer = Number(match[1]);
  const projection = PROJECTIONS.find((p) => projectionKey(layer, p) === key);
  return projection ? { layer, projection } : null;
}

/**
 * The model's tensors in llama.cpp's layout: every tensor the architecture needs (others the checkpoint holds are
 * left out), `adapter` folded into its projections, read from the checkpoint one at a time when written.
 */
export function modelTensors(checkpoint: Checkpoint, dtype: GgufDtype, adapter: MergeAdapter | null): GgufTensor[] {
  const { config } = checkpoint;
  const tensors: GgufTensor[] = [];
  const factors = ropeFactors(config);
  if (factors) {
    tensors.push({
      name: 'rope_freqs.weight',
      dims: [factors.length],
      type: GgmlType.F32,
      values: async () => factors,
    });
  }
  const shifted = (key: string) => config.gemma !== null && key.endsWith('norm.weight');
  for (const [key, shape] of expectedTensors(config)) {
    const name = ggufTensorName(config, key);
    const dims = [...shape].reverse();
    const target = projectionOf(key);
    const heads = target && permutedHeads(config, target.projection);
    const module = target && adapter?.modules.get(`${target.layer}.${target.projection}`);
    const rowLength = shape[shape.length - 1];
    tensors.push({
      name,
      dims,
      type: tensorType(name, dims, dtype),
      values: async () => {
        let values = await checkpoint.readFloat32(key);
        if (module && adapter) foldLora(values, module.A, module.B, adapter.r, adapter.scale);
        if (heads) values = permuteRows(values, heads, rowLength);
        // Gemma's x̂ · (1 + w) as llama.cpp's x̂ · w'
        if (shifted(key)) for (let i = 0; i < values.length; i++) values[i] += 1;
        return values;
      },
    });
  }
  return tensors;
}
