import { bfloat16Bits, f16BitsToF32Bits, float32FromBits, halfBits } from './float16';

/**
 * The architecture of a decoder-only transformer, read from a Hugging Face `config.json`.
 * Supported: `llama` (SmolLM2, Llama 3.x with `rope_scaling` type `llama3`, TinyLlama), `qwen2` (bias on the
 * q/k/v projections), `qwen3` (RMSNorm on q and k per head, explicit `head_dim`), `gemma3_text` (Gemma 3's text
 * models: see GemmaLayout).
 */
export type ModelType = 'llama' | 'qwen2' | 'qwen3' | 'gemma3_text';

export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q_proj, k_proj and v_proj (qwen2; llama's `attention_bias`). */
  attentionBias: boolean;
  /** RMSNorm over each head of q and k before rotary embeddings (qwen3, gemma3_text). */
  qkNorm: boolean;
  /** Gemma 3's layout where it differs from llama's; null for the others. */
  gemma: GemmaLayout | null;
}

/**
 * Gemma 3 (transformers' Gemma3ForCausalLM): embeddings × √hidden (rounded to the checkpoint's dtype); every RMSNorm
 * x̂ · (1 + w); four norms a layer, the attention's and the MLP's outputs normed before each joins the residual;
 * GeGLU with the tanh GELU; q and k normed per head; scores scaled by query_pre_attn_scalar^-½; sliding-window
 * attention on local layers (a key seen while 0 ≤ q − k < window), each kind of layer with its own rotary base.
 */
export interface GemmaLayout {
  embedScale: number;
  /** q · k is scaled by its ^-½ (not head_dim's). */
  queryPreAttnScalar: number;
  slidingWindow: number;
  /** Per layer: true where it attends within the sliding window (its rotary base localRopeTheta). */
  slidingLayers: boolean[];
  localRopeTheta: number;
}

/** The seven projections LoRA can adapt, as PEFT names them. */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

/**
 * The dimensions under the short names the engine's shape comments use: d hidden, f intermediate, H / KV query /
 * key-value heads, hd head dim, eps the RMSNorm epsilon.
 */
export function shortDims(c: ModelConfig) {
  return { d: c.hiddenSize, f: c.intermediateSize, H: c.numHeads, KV: c.numKvHeads, hd: c.headDim, eps: c.rmsNormEps };
}

/**
 * Layer l's attention where it is not llama's: Gemma's score scale (query_pre_attn_scalar^-½ rather than
 * head_dim's), and on its local layers the sliding window; nothing for the other models.
 */
export function layerAttention(c: ModelConfig, l: number): { scale?: number; window?: number } {
  if (!c.gemma) return {};
  const window = c.gemma.slidingLayers[l] ? c.gemma.slidingWindow : undefined;
  return { scale: c.gemma.queryPreAttnScalar ** -0.5, window };
}

/** [out, in] of a projection's weight, as stored in the checkpoint (PyTorch's nn.Linear layout). */
export function projectionShape(config: ModelConfig, projection: Projection): [number, number] {
  const { hiddenSize: d, intermediateSize: f, numHeads: h, numKvHeads: kv, headDim: hd } = config;
  switch (projection) {
    case 'q_proj':
      return [h * hd, d];
    case 'k_proj':
    case 'v_proj':
      return [kv * hd, d];
    case 'o_proj':
      return [d, h * hd];
    case 'gate_proj':
    case 'up_proj':
      return [f, d];
    case 'down_proj':
      return [d, f];
  }
}

/** The checkpoint key of a projection's weight in layer `layer`. */
export function projectionKey(layer: number, projection: Projection): string {
  const block =
    projection === 'gate_proj' || projection === 'up_proj' || projection === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${block}.${projection}.weight`;
}

/**
 * Every base weight the model needs, with its shape, under its Hugging Face checkpoint key.
 * `lm_head.weight` is listed only for untied embeddings.
 */
export function expectedTensors(config: ModelConfig): Map<string, number[]> {
  const tensors = new Map<string, number[]>();
  const { hiddenSize: d, vocabSize: v, headDim: hd } = config;
  tensors.set('model.embed_tokens.weight', [v, d]);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    tensors.set(`${p}.input_layernorm.weight`, [d]);
    tensors.set(`${p}.post_attention_layernorm.weight`, [d]);
    if (config.gemma) {
      tensors.set(`${p}.pre_feedforward_layernorm.weight`, [d]);
      tensors.set(`${p}.post_feedforward_layernorm.weight`, [d]);
    }
    for (const projection of PROJECTIONS)
      tensors.set(projectionKey(l, projection), projectionShape(config, projection));
    if (config.attentionBias) {
      for (const projection of ['q_proj', 'k_proj', 'v_proj'] as const) {
        tensors.set(`${p}.self_attn.${projection}.bias`, [projectionShape(config, projection)[0]]);
      }
    }
    if (config.qkNorm) {
      tensors.set(`${p}.self_attn.q_norm.weight`, [hd]);
      tensors.set(`${p}.self_attn.k_norm.weight`, [hd]);
    }
  }
  tensors.set('model.norm.weight', [d]);
  if (!config.tieWordEmbeddings) tensors.set('lm_head.weight', [v, d]);
  return tensors;
}

const MODEL_TYPES: readonly ModelType[] = ['llama', 'qwen2', 'qwen3', 'gemma3_text'];

export class ModelConfigError extends Error {
  constructor(
    readonly source: string,
    /** The offending config.json field, e.g. `rope_scaling.factor`; null when the file as a whole is wrong. */
    readonly field: string | null,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
    this.name = 'ModelConfigError';
  }
}

/**
 * A `ModelConfig` from the parsed JSON of a Hugging Face `config.json`. Absent fields take the defaults of the
 * transformers config class of the model type (LlamaConfig, Qwen2Config, Qwen3Config), so a config means here what
 * it means in PyTorch; features Hone cannot run (other RoPE scalings, sliding windows, biases beyond q/k/v) are
 * refused rather than ignored.
 */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (!isRecord(json)) throw new ModelConfigError(source, null, `not a JSON object, got ${show(json)}`);
  const fields = new Fields(json, source);
  const modelType = json.model_type;
  if (!MODEL_TYPES.includes(modelType as ModelType)) {
    // The architectures list names the model for a person; only model_type decides.
    const architectures = json.architectures === undefined ? '' : ` (architectures ${show(json.architectures)})`;
    throw fields.fail(
      'model_type',
      `${show(modelType)}${architectures} is not supported; supported: ${MODEL_TYPES.join(', ')}`,
    );
  }

  const hiddenSize = fields.positiveInt('hidden_size');
  const numHeads = fields.positiveInt('num_attention_heads');
  const numKvHeads = fields.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw fields.fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  const derivedHeadDim = defaultHeadDim(modelType as ModelType, hiddenSize, numHeads);
  if (derivedHeadDim === undefined && !fields.has('head_dim')) {
    throw fields.fail(
      'head_dim',
      `is missing and hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`,
    );
  }
  const headDim = fields.positiveInt('head_dim', derivedHeadDim);
  // Rotary embeddings turn the head's dimensions in pairs.
  if (headDim % 2 !== 0) throw fields.fail('head_dim', `must be even for rotary embeddings, got ${headDim}`);

  const gemma = modelType === 'gemma3_text';
  if (gemma) {
    const activation = fields.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
    fields.refuseUnless(activation, 'gelu_pytorch_tanh', "Gemma 3's MLP is supported with the tanh GELU only");
  } else {
    fields.refuseUnless('hidden_act', 'silu', 'only SiLU (SwiGLU) MLPs are supported');
  }
  fields.refuseUnless('mlp_bias', false, 'bias on the MLP projections is not supported');
  if (!gemma) fields.refuseUnless('use_sliding_window', false, 'sliding-window attention is not supported');
  // qwen2 always has q/k/v bias; llama's and qwen3's attention_bias would also put a bias on o_proj.
  if (modelType !== 'qwen2') {
    fields.refuseUnless('attention_bias', false, 'attention_bias (bias on q/k/v and o_proj) is not supported');
  }

  const numLayers = fields.positiveInt('num_hidden_layers');
  const rope = gemma ? parseGemmaRope(fields) : { ...parseRope(fields), localRopeTheta: 0 };
  return {
    modelType: modelType as ModelType,
    vocabSize: fields.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: fields.positiveInt('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: fields.positiveNumber('rms_norm_eps', gemma ? 1e-6 : undefined),
    ropeTheta: rope.ropeTheta,
    ropeScaling: rope.ropeScaling,
    maxPositionEmbeddings: fields.positiveInt('max_position_embeddings'),
    // Gemma3TextConfig ties by default; LlamaConfig, Qwen2Config and Qwen3Config do not.
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', gemma),
    attentionBias: modelType === 'qwen2',
    qkNorm: modelType === 'qwen3' || gemma,
    gemma: gemma ? parseGemma(fields, { hiddenSize, numLayers, localRopeTheta: rope.localRopeTheta }) : null,
  };
}

/** Gemma3TextConfig's fields, with its defaults; what Hone cannot run (softcapped logits, bidirectional) refused. */
function parseGemma(
  fields: Fields,
  known: { hiddenSize: number; numLayers: number; localRopeTheta: number },
): GemmaLayout {
  if (fields.has('final_logit_softcapping')) {
    throw fields.fail('final_logit_softcapping', 'is not supported (Gemma 3 leaves it null)');
  }
  fields.refuseUnless('use_bidirectional_attention', false, 'only causal attention is supported');
  const slidingWindow = fields.positiveInt('sliding_window', 4096);
  let slidingLayers: boolean[];
  if (fields.has('layer_types')) {
    const types = fields.strings('layer_types');
    if (types.length !== known.numLayers) {
      throw fields.fail('layer_types', `has ${types.length} entries for num_hidden_layers ${known.numLayers}`);
    }
    slidingLayers = types.map((type, i) => {
      if (type !== 'sliding_attention' && type !== 'full_attention') {
        throw fields.fail(`layer_types`, `entry ${i} is ${show(type)}: sliding_attention or full_attention`);
      }
      return type === 'sliding_attention';
    });
  } else {
    // Configs before layer_types: every pattern-th layer global, the others local.
    const field = fields.has('sliding_window_pattern') ? 'sliding_window_pattern' : '_sliding_window_pattern';
    const pattern = fields.positiveInt(field, 6);
    slidingLayers = Array.from({ length: known.numLayers }, (_, i) => (i + 1) % pattern !== 0);
  }
  return {
    embedScale: roundToDtype(Math.sqrt(known.hiddenSize), fields.dtype()),
    queryPreAttnScalar: fields.positiveNumber('query_pre_attn_scalar', 256),
    slidingWindow,
    slidingLayers,
    localRopeTheta: known.localRopeTheta,
  };
}

/** x as the checkpoint's dtype holds it: Gemma multiplies its embeddings by √hidden cast to the weights' dtype. */
function roundToDtype(x: number, dtype: string): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return float32FromBits(f16BitsToF32Bits(halfBits(x)));
  if (dtype === 'bfloat16') return float32FromBits(bfloat16Bits(x) << 16);
  return x;
}

/**
 * Gemma 3's rotary bases: global layers' and local layers' (transformers 5's `rope_parameters` per layer kind, or
 * the earlier `rope_theta` and `rope_local_base_freq`); rope scaling (Gemma 3 4B and up) is refused.
 */
function parseGemmaRope(fields: Fields): Pick<ModelConfig, 'ropeTheta' | 'ropeScaling'> & { localRopeTheta: number } {
  const plain = (params: Fields, theta: string, fallback: number) => {
    const type = params.has('rope_type') ? 'rope_type' : 'type';
    if (params.has(type) && params.string(type) !== 'default') {
      throw params.fail(type, `${show(params.string(type))} is not supported for Gemma 3; supported: default`);
    }
    return params.positiveNumber(theta, fallback);
  };
  if (fields.has('rope_parameters')) {
    const params = fields.object('rope_parameters');
    const full = params.has('full_attention') ? params.object('full_attention') : null;
    const sliding = params.has('sliding_attention') ? params.object('sliding_attention') : null;
    return {
      ropeTheta: full ? plain(full, 'rope_theta', 1_000_000) : 1_000_000,
      ropeScaling: null,
      localRopeTheta: sliding ? plain(sliding, 'rope_theta', 10_000) : 10_000,
    };
  }
  if (fields.has('rope_scaling')) plain(fields.object('rope_scaling'), 'factor', 1);
  return {
    ropeTheta: fields.positiveNumber('rope_theta', 1_000_000),
    ropeScaling: null,
    localRopeTheta: fields.positiveNumber('rope_local_base_freq', 10_000),
  };
}

/** Qwen3Config defaults head_dim to 128; the others derive it. Undefined when it cannot be derived. */
/**
 * The `config.json` of a model, as transformers writes it for the model type, so Hone's own models load
 * in PyTorch and back into Hone unchanged (`parseModelConfig(JSON.parse(serializeModelConfig(c)))` is `c`).
 */
export function serializeModelConfig(c: ModelConfig): string {
  const architecture = {
    llama: 'LlamaForCausalLM',
    qwen2: 'Qwen2ForCausalLM',
    qwen3: 'Qwen3ForCausalLM',
    gemma3_text: 'Gemma3ForCausalLM',
  }[c.modelType];
  const json: Record<string, unknown> = {
    architectures: [architecture],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling && {
      rope_type: 'llama3',
      factor: c.ropeScaling.factor,
      low_freq_factor: c.ropeScaling.lowFreqFactor,
      high_freq_factor: c.ropeScaling.highFreqFactor,
      original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
    },
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    torch_dtype: 'float32',
  };
  // Qwen2 always has q/k/v biases (no field); the others only support attention_bias false here.
  if (c.modelType !== 'qwen2') json.attention_bias = false;
  if (c.gemma) {
    delete json.hidden_act;
    json.hidden_activation = 'gelu_pytorch_tanh';
    json.rope_local_base_freq = c.gemma.localRopeTheta;
    json.query_pre_attn_scalar = c.gemma.queryPreAttnScalar;
    json.sliding_window = c.gemma.slidingWindow;
    json.layer_types = c.gemma.slidingLayers.map((s) => (s ? 'sliding_attention' : 'full_attention'));
  }
  return `${JSON.stringify(json, null, 2)}\n`;
}

function defaultHeadDim(modelType: ModelType, hiddenSize: number, numHeads: number): number | undefined {
  if (modelType === 'qwen3') return 128;
  if (modelType === 'gemma3_text') return 256;
  return hiddenSize % numHeads === 0 ? hiddenSize / numHeads : undefined;
}

/**
 * transformers 5 writes `rope_parameters: {rope_type, rope_theta, ...}`; earlier versions write `rope_theta` and
 * `rope_scaling` (null, or `{rope_type | type, ...}`).
 */
function parseRope(fields: Fields): Pick<ModelConfig, 'ropeTheta' | 'ropeScaling'> {
  if (fields.has('rope_parameters')) {
    const params = fields.object('rope_parameters');
    return { ropeTheta: params.positiveNumber('rope_theta', 10000), ropeScaling: parseRopeScaling(params) };
  }
  const ropeTheta = fields.positiveNumber('rope_theta', 10000);
  return {
    ropeTheta,
    ropeScaling: fields.has('rope_scaling') ? parseRopeScaling(fields.object('rope_scaling')) : null,
  };
}

function parseRopeScaling(scaling: Fields): Llama3RopeScaling | null {
  const typeField = scaling.has('rope_type') ? 'rope_type' : 'type';
  const type = scaling.string(typeField);
  if (type === 'default') return null;
  if (type !== 'llama3') {
    throw scaling.fail(typeField, `${show(type)} is not supported; supported: llama3 (or default, none)`);
  }
  const factor = scaling.positiveNumber('factor');
  // The bounds transformers' _validate_llama3_parameters enforces.
  if (factor < 1) throw scaling.fail('factor', `must be at least 1, got ${factor}`);
  const lowFreqFactor = scaling.positiveNumber('low_freq_factor');
  const highFreqFactor = scaling.positiveNumber('high_freq_factor');
  if (highFreqFactor <= lowFreqFactor) {
    throw scaling.fail('high_freq_factor', `${highFreqFactor} must be greater than low_freq_factor ${lowFreqFactor}`);
  }
  return {
    type: 'llama3',
    factor,
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings: scaling.positiveInt('original_max_position_embeddings'),
  };
}

/** Typed reads of config fields; absent and null both mean "use the default". Errors name the full field path. */
class Fields {
  constructor(
    private readonly json: Record<string, unknown>,
    private readonly source: string,
    private readonly prefix = '',
  ) {}

  /** An error whose message starts with the field's full path: `rope_scaling.factor must be ...`. */
  fail(field: string, detail: string): ModelConfigError {
    const path = this.prefix + field;
    return new ModelConfigError(this.source, path, `${path} ${detail}`);
  }

  has(field: string): boolean {
    return Object.hasOwn(this.json, field) && this.json[field] !== null;
  }

  positiveInt(field: string, fallback?: number): number {
    const value = this.read(field, fallback);
    if (!Number.isSafeInteger(value) || (value as number) <= 0) {
      throw this.fail(field, `must be a positive integer, got ${show(value)}`);
    }
    return value as number;
  }

  positiveNumber(field: string, fallback?: number): number {
    const value = this.read(field, fallback);
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw this.fail(field, `must be a positive number, got ${show(value)}`);
    }
    return value;
  }

  boolean(field: string, fallback: boolean): boolean {
    const value = this.read(field, fallback);
    if (typeof value !== 'boolean') throw this.fail(field, `must be true or false, got ${show(value)}`);
    return value;
  }

  /** A list of strings. */
  strings(field: string): string[] {
    const value = this.read(field);
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      throw this.fail(field, `must be a list of strings, got ${show(value)}`);
    }
    return value as string[];
  }

  /** The weights' dtype as the config names it (`torch_dtype`, or transformers 5's `dtype`); float32 when unsaid. */
  dtype(): string {
    for (const field of ['dtype', 'torch_dtype']) if (this.has(field)) return this.string(field);
    return 'float32';
  }

  string(field: string): string {
    const value = this.read(field);
    if (typeof value !== 'string') throw this.fail(field, `must be a string, got ${show(value)}`);
    return value;
  }

  object(field: string): Fields {
    const value = this.read(field);
    if (!isRecord(value)) throw this.fail(field, `must be an object, got ${show(value)}`);
    return new Fields(value, this.source, `${this.prefix}${field}.`);
  }

  /** Refuses a present field whose value is not the one Hone supports. */
  refuseUnless(field: string, supported: string | boolean, why: string): void {
    if (this.has(field) && this.json[field] !== supported) {
      throw this.fail(field, `${show(this.json[field])}: ${why}`);
    }
  }

  private read(field: string, fallback?: unknown): unknown {
    if (this.has(field)) return this.json[field];
    if (fallback === undefined) throw this.fail(field, `is missing`);
    return fallback;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
