/**
 * The architecture of a decoder-only transformer, read from a Hugging Face `config.json`.
 * Supported: `llama` (SmolLM2, Llama 3.x with `rope_scaling` type `llama3`, TinyLlama), `qwen2` (bias on the
 * q/k/v projections), `qwen3` (RMSNorm on q and k per head, explicit `head_dim`).
 */
export type ModelType = 'llama' | 'qwen2' | 'qwen3';

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
  /** RMSNorm over each head of q and k before rotary embeddings (qwen3). */
  qkNorm: boolean;
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

const MODEL_TYPES: readonly ModelType[] = ['llama', 'qwen2', 'qwen3'];

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

  fields.refuseUnless('hidden_act', 'silu', 'only SiLU (SwiGLU) MLPs are supported');
  fields.refuseUnless('mlp_bias', false, 'bias on the MLP projections is not supported');
  fields.refuseUnless('use_sliding_window', false, 'sliding-window attention is not supported');
  // qwen2 always has q/k/v bias; llama's and qwen3's attention_bias would also put a bias on o_proj.
  if (modelType !== 'qwen2') {
    fields.refuseUnless('attention_bias', false, 'attention_bias (bias on q/k/v and o_proj) is not supported');
  }

  return {
    modelType: modelType as ModelType,
    vocabSize: fields.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: fields.positiveInt('intermediate_size'),
    numLayers: fields.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: fields.positiveNumber('rms_norm_eps'),
    ...parseRope(fields),
    maxPositionEmbeddings: fields.positiveInt('max_position_embeddings'),
    // False is the default of all three config classes (only PretrainedConfig's is true).
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', false),
    attentionBias: modelType === 'qwen2',
    qkNorm: modelType === 'qwen3',
  };
}

/** Qwen3Config defaults head_dim to 128; the others derive it. Undefined when it cannot be derived. */
/**
 * The `config.json` of a model, as transformers writes it for the model type, so Hone's own models load
 * in PyTorch and back into Hone unchanged (`parseModelConfig(JSON.parse(serializeModelConfig(c)))` is `c`).
 */
export function serializeModelConfig(c: ModelConfig): string {
  const architecture = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' }[c.modelType];
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
  // Qwen2 always has q/k/v biases (no field); llama and qwen3 only support attention_bias false here.
  if (c.modelType !== 'qwen2') json.attention_bias = false;
  return `${JSON.stringify(json, null, 2)}\n`;
}

function defaultHeadDim(modelType: ModelType, hiddenSize: number, numHeads: number): number | undefined {
  if (modelType === 'qwen3') return 128;
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
