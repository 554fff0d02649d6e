import {
  expectedTensors,
  type ModelConfig,
  PROJECTIONS,
  type Projection,
  projectionKey,
  projectionShape,
} from '../../../core/model-config';
import { ropeInverseFrequencies } from '../model/rope-frequencies';

/** The reference model's parameters: a checkpoint's tensors and a LoRA adapter, checked and gathered per layer. */

export interface ReferenceLora {
  rank: number;
  alpha: number;
  useRslora: boolean;
  /** keyed `${layer}.${projection}`, e.g. "0.q_proj"; A: [rank, in], B: [out, rank], row-major */
  modules: Map<string, { A: Float64Array; B: Float64Array }>;
  /**
   * LoRA dropout, as fixed masks: per module (same keys), [N, in] multipliers of the LoRA path's input (0, or
   * 1 / (1 - p) where kept), so a stochastic engine step can be checked exactly. Absent: no dropout.
   */
  dropoutMasks?: Map<string, Float64Array>;
}

/** The LoRA scale s in y = x W^T + s (x A^T) B^T: alpha / rank, or alpha / sqrt(rank) with rsLoRA (PEFT). */
export function loraScale(lora: Pick<ReferenceLora, 'rank' | 'alpha' | 'useRslora'>): number {
  return lora.useRslora ? lora.alpha / Math.sqrt(lora.rank) : lora.alpha / lora.rank;
}

/**
 * A linear layer as PEFT's lora.Linear wraps nn.Linear: y = x W^T (+ bias) + s (x A^T) B^T.
 * W: [out, in], bias: [out], A: [r, in], B: [out, r].
 */
export interface Linear {
  inDim: number;
  outDim: number;
  weight: Float64Array;
  bias: Float64Array | null;
  lora: { rank: number; scale: number; A: Float64Array; B: Float64Array; mask: Float64Array | null } | null;
  /** Where gradients go; null entries are frozen. */
  grad: {
    weight: Float64Array | null;
    bias: Float64Array | null;
    A: Float64Array | null;
    B: Float64Array | null;
  };
}

/** One decoder layer's parameters. */
export interface Layer {
  inputNorm: Param;
  /** The norm before the MLP: llama's post_attention_layernorm, Gemma's pre_feedforward_layernorm. */
  postNorm: Param;
  qNorm: Param | null;
  kNorm: Param | null;
  /** Gemma's norms of the attention's and the MLP's outputs (post_attention_, post_feedforward_layernorm). */
  attnOutNorm: Param | null;
  mlpOutNorm: Param | null;
  /** Gemma's local layers: sliding-window attention, the local rotary base. */
  sliding: boolean;
  proj: Record<Projection, Linear>;
}

/** A vector of parameters and the buffer its gradient accumulates into (null when frozen). */
export interface Param {
  value: Float64Array;
  grad: Float64Array | null;
}

export interface Model {
  config: ModelConfig;
  embed: Param;
  /** [V, D], no bias or LoRA: embed_tokens' weight and gradient when tied, so both uses accumulate into one */
  lmHead: Linear;
  finalNorm: Param;
  layers: Layer[];
  /** [hd / 2] */
  invFreq: Float64Array;
  /** [hd / 2] Gemma's local layers' (null for the others). */
  localInvFreq: Float64Array | null;
}

/** Where gradients accumulate: one buffer per LoRA matrix, and per base weight when `full`. */
export class Gradients {
  readonly weights = new Map<string, Float64Array>();
  readonly lora = new Map<string, { A: Float64Array; B: Float64Array }>();
  constructor(private readonly full: boolean) {}

  /** The gradient buffer of a base weight (created once, so tied uses share it), or null when frozen. */
  weight(key: string, size: number): Float64Array | null {
    if (!this.full) return null;
    let grad = this.weights.get(key);
    if (!grad) {
      grad = new Float64Array(size);
      this.weights.set(key, grad);
    }
    return grad;
  }

  loraModule(key: string, sizeA: number, sizeB: number): { A: Float64Array; B: Float64Array } {
    const grad = { A: new Float64Array(sizeA), B: new Float64Array(sizeB) };
    this.lora.set(key, grad);
    return grad;
  }
}

/** The parameters, every tensor and LoRA module checked against the config; gradients into `grads` (none if null). */
export function buildModel(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  grads: Gradients | null,
): Model {
  checkConfig(config);
  const expected = expectedTensors(config);
  for (const [key, shape] of expected) {
    const value = weights.get(key);
    if (!value) throw new Error(`reference: missing weight ${key} [${shape.join(', ')}]`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (value.length !== size) {
      throw new Error(`reference: weight ${key} has ${value.length} values, expected ${size} ([${shape.join(', ')}])`);
    }
  }
  const loraModules = checkLora(config, lora);
  const param = (key: string): Param => {
    const value = weights.get(key) as Float64Array;
    return { value, grad: grads?.weight(key, value.length) ?? null };
  };
  const optionalParam = (key: string): Param | null => (expected.has(key) ? param(key) : null);
  // Gemma's norms scale by 1 + w: the twin's weight is 1 + w, and w's gradient is (1 + w)'s.
  const norm = (key: string): Param => {
    const p = param(key);
    return config.gemma ? { value: p.value.map((w) => 1 + w), grad: p.grad } : p;
  };
  const optionalNorm = (key: string): Param | null => (expected.has(key) ? norm(key) : null);

  const layers: Layer[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const proj = {} as Record<Projection, Linear>;
    for (const projection of PROJECTIONS) {
      const [outDim, inDim] = projectionShape(config, projection);
      const weightKey = projectionKey(l, projection);
      const weight = param(weightKey);
      const bias = optionalParam(weightKey.replace(/\.weight$/, '.bias'));
      const module = loraModules.get(`${l}.${projection}`);
      const loraGrad =
        module && grads ? grads.loraModule(`${l}.${projection}`, module.A.length, module.B.length) : null;
      proj[projection] = {
        inDim,
        outDim,
        weight: weight.value,
        bias: bias?.value ?? null,
        lora:
          module && lora
            ? {
                rank: lora.rank,
                scale: loraScale(lora),
                A: module.A,
                B: module.B,
                mask: lora.dropoutMasks?.get(`${l}.${projection}`) ?? null,
              }
            : null,
        grad: { weight: weight.grad, bias: bias?.grad ?? null, A: loraGrad?.A ?? null, B: loraGrad?.B ?? null },
      };
    }
    const gemma = config.gemma !== null;
    layers.push({
      inputNorm: norm(`${p}.input_layernorm.weight`),
      postNorm: norm(`${p}.${gemma ? 'pre_feedforward' : 'post_attention'}_layernorm.weight`),
      qNorm: optionalNorm(`${p}.self_attn.q_norm.weight`),
      kNorm: optionalNorm(`${p}.self_attn.k_norm.weight`),
      attnOutNorm: gemma ? norm(`${p}.post_attention_layernorm.weight`) : null,
      mlpOutNorm: gemma ? norm(`${p}.post_feedforward_layernorm.weight`) : null,
      sliding: config.gemma?.slidingLayers[l] ?? false,
      proj,
    });
  }
  const embed = param('model.embed_tokens.weight');
  const lmHead = config.tieWordEmbeddings ? embed : param('lm_head.weight');
  return {
    config,
    embed,
    lmHead: {
      inDim: config.hiddenSize,
      outDim: config.vocabSize,
      weight: lmHead.value,
      bias: null,
      lora: null,
      grad: { weight: lmHead.grad, bias: null, A: null, B: null },
    },
    finalNorm: norm('model.norm.weight'),
    layers,
    invFreq: ropeInverseFrequencies(config),
    localInvFreq: config.gemma ? ropeInverseFrequencies(config, true) : null,
  };
}

function checkConfig(config: ModelConfig): void {
  const { numHeads, numKvHeads, headDim } = config;
  for (const [name, value] of Object.entries({
    vocabSize: config.vocabSize,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numHeads,
    numKvHeads,
    headDim,
  })) {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`reference: config.${name} = ${value} is invalid`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new Error(`reference: numHeads ${numHeads} is not a multiple of numKvHeads ${numKvHeads}`);
  }
  if (headDim % 2 !== 0) throw new Error(`reference: headDim ${headDim} must be even for rotary embeddings`);
}

/** Checks every LoRA module's key and sizes; returns the modules by key. */
function checkLora(config: ModelConfig, lora: ReferenceLora | null): Map<string, { A: Float64Array; B: Float64Array }> {
  if (!lora) return new Map();
  const { rank } = lora;
  if (!Number.isInteger(rank) || rank <= 0) throw new Error(`reference: LoRA rank ${rank} is not a positive integer`);
  for (const [key, module] of lora.modules) {
    const match = /^(\d+)\.(\w+)$/.exec(key);
    const layer = match ? Number(match[1]) : -1;
    const projection = match?.[2] as Projection;
    if (!match || layer >= config.numLayers || !PROJECTIONS.includes(projection)) {
      throw new Error(`reference: LoRA module key "${key}" is not "<layer>.<projection>" for this model`);
    }
    const [outDim, inDim] = projectionShape(config, projection);
    if (module.A.length !== rank * inDim) {
      throw new Error(`reference: LoRA ${key} A has ${module.A.length} values, expected [${rank}, ${inDim}]`);
    }
    if (module.B.length !== outDim * rank) {
      throw new Error(`reference: LoRA ${key} B has ${module.B.length} values, expected [${outDim}, ${rank}]`);
    }
  }
  return lora.modules;
}
