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
