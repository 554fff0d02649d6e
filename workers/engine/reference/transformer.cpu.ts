/**
 * The float64 CPU reference of the whole model: forward, loss and backward of a llama / qwen2 / qwen3 decoder
 * with optional LoRA adapters, computed exactly as Hugging Face transformers + PEFT do (they in fp32, we in
 * float64). It exists to check the GPU engine, so it favours clarity over speed: every layer's forward sits beside
 * its backward, activations are plain row-major Float64Arrays, and shapes are written in the comments.
 *
 * Notation: B batch rows, T tokens per row, N = B * T positions, D hiddenSize, F intermediateSize, V vocabSize,
 * H query heads, KV key/value heads, hd headDim, r LoRA rank. Position n = b * T + t.
 */
import {
  expectedTensors,
  type ModelConfig,
  PROJECTIONS,
  type Projection,
  projectionKey,
  projectionShape,
} from '../../../core/model-config';
import { type AttentionDims, attentionBackwardCpu, attentionForwardCpu } from '../kernels/attention.cpu';
import { ropeInverseFrequencies } from '../model/rope-frequencies';

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

export interface ReferenceResult {
  loss: number;
  /** d loss / d A and d B for each LoRA module, same keys and layouts as ReferenceLora.modules */
  loraGrads: Map<string, { A: Float64Array; B: Float64Array }>;
  /**
   * With `full`: d loss / d every base weight, under its checkpoint key (tied embeddings: one grad for
   * model.embed_tokens.weight holding both uses). Empty otherwise.
   */
  weightGrads: Map<string, Float64Array>;
}

export interface ReferenceOptions {
  /** Also differentiate the base weights (they are frozen otherwise, as in LoRA training). */
  full?: boolean;
}

/** Labels equal to this are skipped by the loss (PyTorch's cross_entropy ignore_index). */
export const IGNORE_INDEX = -100;

/** The LoRA scale s in y = x W^T + s (x A^T) B^T: alpha / rank, or alpha / sqrt(rank) with rsLoRA (PEFT). */
export function loraScale(lora: Pick<ReferenceLora, 'rank' | 'alpha' | 'useRslora'>): number {
  return lora.useRslora ? lora.alpha / Math.sqrt(lora.rank) : lora.alpha / lora.rank;
}

/** Mean cross-entropy of the model on `tokens` (labels default to the tokens, shifted inside as HF does). */
export function referenceForward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  labels?: number[][],
): number {
  const model = buildModel(config, weights, lora, null);
  return modelForward(model, readBatch(config, tokens, labels)).loss;
}

/** The loss and its gradients: LoRA A and B always, every base weight too with `full`. */
export function referenceForwardBackward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  labels?: number[][],
  options: ReferenceOptions = {},
): ReferenceResult {
  const grads = new Gradients(options.full ?? false);
  const model = buildModel(config, weights, lora, grads);
  const { loss, cache } = modelForward(model, readBatch(config, tokens, labels));
  modelBackward(model, cache);
  return { loss, loraGrads: grads.lora, weightGrads: grads.weights };
}

export interface ReferenceRewardResult {
  /** Mean Bradley-Terry loss over the pairs (rows 2i chosen, 2i + 1 rejected). */
  loss: number;
  /** Each row's score. */
  scores: Float64Array;
  loraGrads: Map<string, { A: Float64Array; B: Float64Array }>;
  /** d loss / d the score head [D]. */
  headGrad: Float64Array;
}

/**
 * A reward model: the same transformer up to model.norm, a score head `head` [D] read at `positions[b]` (the
 * position within row b), and the Bradley-Terry loss softplus(r_rejected - r_chosen) averaged over the pairs.
 */
export function referenceRewardForwardBackward(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[][],
  positions: number[],
  head: Float64Array,
): ReferenceRewardResult {
  const grads = new Gradients(false);
  const model = buildModel(config, weights, lora, grads);
  const batch = readBatch(config, tokens, undefined, false);
  const { hidden, cache } = hiddenForward(model, batch);
  const { B, T, D } = cache.dims;
  if (B % 2 !== 0 || positions.length !== B) throw new Error('reference: reward rows come in pairs, one position each');
  const rowOf = (b: number) => (b * T + positions[b]) * D;
  const scores = Float64Array.from({ length: B }, (_, b) => {
    let s = 0;
    for (let i = 0; i < D; i++) s += hidden[rowOf(b) + i] * head[i];
    return s;
  });
  const pairs = B / 2;
  let loss = 0;
  const dScores = new Float64Array(B);
  for (let p = 0; p < pairs; p++) {
    const margin = scores[2 * p] - scores[2 * p + 1];
    loss += Math.log1p(Math.exp(-margin)) / pairs;
    const d = -1 / (1 + Math.exp(margin)) / pairs; // d loss / d r_chosen = -sigmoid(-margin) / pairs
    dScores[2 * p] = d;
    dScores[2 * p + 1] = -d;
  }
  const dHidden = new Float64Array(hidden.length);
  const headGrad = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < D; i++) {
      dHidden[rowOf(b) + i] += dScores[b] * head[i];
      headGrad[i] += dScores[b] * hidden[rowOf(b) + i];
    }
  }
  hiddenBackward(model, cache, dHidden);
  return { loss, scores, loraGrads: grads.lora, headGrad };
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs: validation and the model's parameters, gathered per layer.

interface Batch {
  B: number;
  T: number;
  /** [N] token ids */
  tokens: Int32Array;
  /** [N] the label each position predicts (already shifted: labels[b][t + 1]), or IGNORE_INDEX */
  targets: Int32Array;
  /** how many targets are not IGNORE_INDEX: the loss is their mean */
  count: number;
}

/** Tokens and their shifted targets; `needTargets` false for a model read through a head rather than the LM head. */
function readBatch(config: ModelConfig, tokens: number[][], labels: number[][] | undefined, needTargets = true): Batch {
  const B = tokens.length;
  if (B === 0) throw new Error('reference: tokens is empty (expected [batch][seq])');
  const T = tokens[0].length;
  if (T === 0) throw new Error('reference: tokens[0] is empty');
  checkRows('tokens', tokens, B, T);
  if (labels) checkRows('labels', labels, B, T);
  const V = config.vocabSize;
  const flat = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const id = tokens[b][t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`reference: token ${id} at [${b}][${t}] is out of range [0, ${V})`);
      }
      flat[b * T + t] = id;
      const label = (labels ?? tokens)[b][t];
      if (label !== IGNORE_INDEX && (!Number.isInteger(label) || label < 0 || label >= V)) {
        throw new Error(`reference: label ${label} at [${b}][${t}] is neither ${IGNORE_INDEX} nor in [0, ${V})`);
      }
      // HF's shift: the logits at t predict the label at t + 1; the label at t = 0 is never predicted.
      if (t > 0 && label !== IGNORE_INDEX) {
        targets[b * T + t - 1] = label;
        count++;
      }
    }
  }
  if (count === 0 && needTargets) {
    throw new Error(`reference: no label to predict (all labels after position 0 are ${IGNORE_INDEX}, or seq is 1)`);
  }
  return { B, T, tokens: flat, targets, count };
}

function checkRows(name: string, rows: number[][], B: number, T: number): void {
  if (rows.length !== B) throw new Error(`reference: ${name} has ${rows.length} rows, expected ${B}`);
  rows.forEach((row, b) => {
    if (row.length !== T) throw new Error(`reference: ${name}[${b}] has ${row.length} tokens, expected ${T} (ragged)`);
  });
}

/**
 * A linear layer as PEFT's lora.Linear wraps nn.Linear: y = x W^T (+ bias) + s (x A^T) B^T.
 * W: [out, in], bias: [out], A: [r, in], B: [out, r].
 */
interface Linear {
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

interface Layer {
  inputNorm: Param;
  postNorm: Param;
  qNorm: Param | null;
  kNorm: Param | null;
  proj: Record<Projection, Linear>;
}

/** A vector of parameters and the buffer its gradient accumulates into (null when frozen). */
interface Param {
  value: Float64Array;
  grad: Float64Array | null;
}

interface Model {
  config: ModelConfig;
  embed: Param;
  /** [V, D]: embed_tokens itself when tied, so both uses accumulate into one gradient */
  lmHead: Param;
  finalNorm: Param;
  layers: Layer[];
  /** [hd / 2] */
  invFreq: Float64Array;
}

/** Where gradients accumulate: one buffer per LoRA matrix, and per base weight when `full`. */
class Gradients {
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

function buildModel(
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
    layers.push({
      inputNorm: param(`${p}.input_layernorm.weight`),
      postNorm: param(`${p}.post_attention_layernorm.weight`),
      qNorm: optionalParam(`${p}.self_attn.q_norm.weight`),
      kNorm: optionalParam(`${p}.self_attn.k_norm.weight`),
      proj,
    });
  }
  const embed = param('model.embed_tokens.weight');
  return {
    config,
    embed,
    lmHead: config.tieWordEmbeddings ? embed : param('lm_head.weight'),
    finalNorm: param('model.norm.weight'),
    layers,
    invFreq: ropeInverseFrequencies(config),
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

// ---------------------------------------------------------------------------------------------------------------
// Matrix products on row-major arrays. W is always stored [out, in], as nn.Linear keeps it.

/** y[N, out] = x[N, in] · W[out, in]^T */
function matmulTransposed(x: Float64Array, w: Float64Array, N: number, inDim: number, outDim: number): Float64Array {
  const y = new Float64Array(N * outDim);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < outDim; o++) {
      let sum = 0;
      for (let i = 0; i < inDim; i++) sum += x[n * inDim + i] * w[o * inDim + i];
      y[n * outDim + o] = sum;
    }
  }
  return y;
}

/** dx[N, in] += scale * dy[N, out] · W[out, in] (the input gradient of y = x W^T) */
function addMatmul(
  dx: Float64Array,
  dy: Float64Array,
  w: Float64Array,
  N: number,
  inDim: number,
  outDim: number,
  scale = 1,
) {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < outDim; o++) {
      const g = scale * dy[n * outDim + o];
      if (g === 0) continue;
      for (let i = 0; i < inDim; i++) dx[n * inDim + i] += g * w[o * inDim + i];
    }
  }
}

/** dW[out, in] += scale * dy[N, out]^T · x[N, in] (the weight gradient of y = x W^T) */
function addOuter(
  dw: Float64Array,
  dy: Float64Array,
  x: Float64Array,
  N: number,
  inDim: number,
  outDim: number,
  scale = 1,
) {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < outDim; o++) {
      const g = scale * dy[n * outDim + o];
      if (g === 0) continue;
      for (let i = 0; i < inDim; i++) dw[o * inDim + i] += g * x[n * inDim + i];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Linear + LoRA

interface LinearCache {
  /** [N, in] the input */
  x: Float64Array;
  /** [N, in] the LoRA path's input: x, or dropout(x) */
  xl: Float64Array;
  /** [N, r] xl A^T, the LoRA bottleneck (null without LoRA) */
  xa: Float64Array | null;
}

/** y[N, out] = x W^T + bias + s (dropout(x) A^T) B^T */
function linearForward(lin: Linear, x: Float64Array, N: number): { y: Float64Array; cache: LinearCache } {
  const y = matmulTransposed(x, lin.weight, N, lin.inDim, lin.outDim);
  if (lin.bias) {
    for (let n = 0; n < N; n++) for (let o = 0; o < lin.outDim; o++) y[n * lin.outDim + o] += lin.bias[o];
  }
  let xa: Float64Array | null = null;
  let xl = x;
  if (lin.lora) {
    const { rank, scale, A, B, mask } = lin.lora;
    if (mask) xl = x.map((v, i) => v * mask[i]);
    xa = matmulTransposed(xl, A, N, lin.inDim, rank); // [N, r]
    const delta = matmulTransposed(xa, B, N, rank, lin.outDim); // [N, out]
    for (let i = 0; i < y.length; i++) y[i] += scale * delta[i];
  }
  return { y, cache: { x, xl, xa } };
}

/** Accumulates dW, dbias, dA, dB (where not frozen); returns dx[N, in]. */
function linearBackward(lin: Linear, cache: LinearCache, dy: Float64Array, N: number): Float64Array {
  const { inDim, outDim, grad } = lin;
  const dx = new Float64Array(N * inDim);
  addMatmul(dx, dy, lin.weight, N, inDim, outDim);
  if (grad.weight) addOuter(grad.weight, dy, cache.x, N, inDim, outDim);
  if (grad.bias) {
    for (let n = 0; n < N; n++) for (let o = 0; o < outDim; o++) grad.bias[o] += dy[n * outDim + o];
  }
  if (lin.lora && cache.xa) {
    const { rank, scale, A, B } = lin.lora;
    // y += s * xa B^T, xa = xl A^T, xl = x * mask: dB = s dy^T xa; dxa = s dy B; dA = dxa^T xl;
    // dx += (dxa A) * mask.
    const { mask } = lin.lora;
    if (grad.B) addOuter(grad.B, dy, cache.xa, N, rank, outDim, scale);
    const dxa = new Float64Array(N * rank);
    addMatmul(dxa, dy, B, N, rank, outDim, scale);
    if (grad.A) addOuter(grad.A, dxa, cache.xl, N, inDim, rank);
    const dxl = new Float64Array(N * inDim);
    addMatmul(dxl, dxa, A, N, inDim, rank);
    for (let i = 0; i < dx.length; i++) dx[i] += mask ? dxl[i] * mask[i] : dxl[i];
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm over rows of `dim`: y = w * x / sqrt(mean(x^2) + eps). Used on [N, D] and, for qwen3, on [N * heads, hd].

interface NormCache {
  x: Float64Array;
  /** [rows] 1 / sqrt(mean(x^2) + eps) */
  rstd: Float64Array;
}

function rmsNormForward(x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let i = 0; i < dim; i++) sumSq += x[r * dim + i] ** 2;
    rstd[r] = 1 / Math.sqrt(sumSq / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = w[i] * x[r * dim + i] * rstd[r];
  }
  return { y, cache: { x, rstd } satisfies NormCache };
}

/**
 * With xhat = x * rstd and g = w * dy: dx = rstd * (g - xhat * mean(g * xhat)) (rstd depends on every x of the
 * row, hence the mean term); dw += dy * xhat.
 */
function rmsNormBackward(param: Param, cache: NormCache, dy: Float64Array, rows: number, dim: number): Float64Array {
  const { x, rstd } = cache;
  const w = param.value;
  const dx = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let dot = 0; // sum(g * xhat)
    for (let i = 0; i < dim; i++) dot += w[i] * dy[r * dim + i] * x[r * dim + i] * rstd[r];
    for (let i = 0; i < dim; i++) {
      const xhat = x[r * dim + i] * rstd[r];
      dx[r * dim + i] = rstd[r] * (w[i] * dy[r * dim + i] - (xhat * dot) / dim);
      if (param.grad) param.grad[i] += dy[r * dim + i] * xhat;
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------------------------
// Rotary embeddings, HF's rotate_half convention: the pairs are (i, i + hd/2), not adjacent elements.

/**
 * Rotates every head of x [N, heads * hd] (N = rows * T, position t = n % T) and returns the result:
 * out[i] = x[i] cos - x[i + hd/2] sin, out[i + hd/2] = x[i + hd/2] cos + x[i] sin, angle = t * invFreq[i].
 * `direction` -1 rotates by the opposite angle: that is also the backward, a rotation's transpose being its inverse.
 */
export function applyRotary(
  x: Float64Array,
  T: number,
  heads: number,
  headDim: number,
  invFreq: Float64Array,
  direction: 1 | -1 = 1,
): Float64Array {
  const half = headDim / 2;
  const out = new Float64Array(x.length);
  const N = x.length / (heads * headDim);
  for (let n = 0; n < N; n++) {
    const t = n % T;
    for (let h = 0; h < heads; h++) {
      const base = (n * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const cos = Math.cos(t * invFreq[i]);
        const sin = direction * Math.sin(t * invFreq[i]);
        const x1 = x[base + i];
        const x2 = x[base + i + half];
        out[base + i] = x1 * cos - x2 * sin;
        out[base + i + half] = x2 * cos + x1 * sin;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU: act = silu(gate) * up, silu(g) = g * sigmoid(g).

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** g, u: [N, F] → [N, F] */
function swigluForward(g: Float64Array, u: Float64Array): Float64Array {
  const out = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) out[i] = g[i] * sigmoid(g[i]) * u[i];
  return out;
}

/** d silu(g) / dg = sigmoid(g) * (1 + g * (1 - sigmoid(g))) */
function swigluBackward(dout: Float64Array, g: Float64Array, u: Float64Array) {
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = sigmoid(g[i]);
    du[i] = dout[i] * g[i] * s;
    dg[i] = dout[i] * u[i] * s * (1 + g[i] * (1 - s));
  }
  return { dg, du };
}

// ---------------------------------------------------------------------------------------------------------------
// One decoder layer:
//   n1 = input_layernorm(x);  x2 = x + o_proj(attention(rope(qnorm(q_proj(n1))), rope(knorm(k_proj(n1))), v_proj(n1)))
//   n2 = post_attention_layernorm(x2);  out = x2 + down_proj(silu(gate_proj(n2)) * up_proj(n2))

interface LayerCache {
  norm1: NormCache;
  q: LinearCache;
  k: LinearCache;
  v: LinearCache;
  /** qwen3's per-head norms, over [N * heads, hd] */
  qNorm: NormCache | null;
  kNorm: NormCache | null;
  /** [N, H * hd], [N, KV * hd], [N, KV * hd]: what attention read (q and k rotated) */
  qRot: Float64Array;
  kRot: Float64Array;
  vOut: Float64Array;
  /** [B, H, T, T] */
  probs: Float64Array;
  o: LinearCache;
  norm2: NormCache;
  gate: LinearCache;
  up: LinearCache;
  /** [N, F] gate_proj and up_proj outputs */
  g: Float64Array;
  u: Float64Array;
  down: LinearCache;
}

interface Dims extends AttentionDims {
  N: number;
  D: number;
}

/** x: [N, D] → [N, D] */
function layerForward(model: Model, layer: Layer, x: Float64Array, d: Dims) {
  const { N, D, H, KV, hd, T } = d;
  const eps = model.config.rmsNormEps;
  const { proj } = layer;

  const norm1 = rmsNormForward(x, layer.inputNorm.value, N, D, eps);
  const q = linearForward(proj.q_proj, norm1.y, N); // [N, H * hd]
  const k = linearForward(proj.k_proj, norm1.y, N); // [N, KV * hd]
  const v = linearForward(proj.v_proj, norm1.y, N); // [N, KV * hd]
  const qNorm = layer.qNorm ? rmsNormForward(q.y, layer.qNorm.value, N * H, hd, eps) : null;
  const kNorm = layer.kNorm ? rmsNormForward(k.y, layer.kNorm.value, N * KV, hd, eps) : null;
  const qRot = applyRotary(qNorm?.y ?? q.y, T, H, hd, model.invFreq);
  const kRot = applyRotary(kNorm?.y ?? k.y, T, KV, hd, model.invFreq);
  const attention = attentionForwardCpu(qRot, kRot, v.y, d); // [N, H * hd]
  const o = linearForward(proj.o_proj, attention.out, N); // [N, D]
  const x2 = add(x, o.y);

  const norm2 = rmsNormForward(x2, layer.postNorm.value, N, D, eps);
  const gate = linearForward(proj.gate_proj, norm2.y, N); // [N, F]
  const up = linearForward(proj.up_proj, norm2.y, N); // [N, F]
  const down = linearForward(proj.down_proj, swigluForward(gate.y, up.y), N); // [N, D]
  const out = add(x2, down.y);

  const cache: LayerCache = {
    norm1: norm1.cache,
    q: q.cache,
    k: k.cache,
    v: v.cache,
    qNorm: qNorm?.cache ?? null,
    kNorm: kNorm?.cache ?? null,
    qRot,
    kRot,
    vOut: v.y,
    probs: attention.probs,
    o: o.cache,
    norm2: norm2.cache,
    gate: gate.cache,
    up: up.cache,
    g: gate.y,
    u: up.y,
    down: down.cache,
  };
  return { out, cache };
}

/** dOut: [N, D] → dx: [N, D], accumulating the layer's parameter gradients. */
function layerBackward(model: Model, layer: Layer, c: LayerCache, dOut: Float64Array, d: Dims): Float64Array {
  const { N, D, H, KV, hd, T } = d;
  const { proj } = layer;

  // MLP branch; the residual passes dOut straight through to x2.
  const dAct = linearBackward(proj.down_proj, c.down, dOut, N);
  const { dg, du } = swigluBackward(dAct, c.g, c.u);
  const dn2 = add(linearBackward(proj.gate_proj, c.gate, dg, N), linearBackward(proj.up_proj, c.up, du, N));
  const dx2 = add(dOut, rmsNormBackward(layer.postNorm, c.norm2, dn2, N, D));

  // Attention branch; the residual passes dx2 straight through to x.
  const dAttention = linearBackward(proj.o_proj, c.o, dx2, N);
  const { dq, dk, dv } = attentionBackwardCpu(dAttention, c.qRot, c.kRot, c.vOut, c.probs, d);
  let dqProj = applyRotary(dq, T, H, hd, model.invFreq, -1);
  let dkProj = applyRotary(dk, T, KV, hd, model.invFreq, -1);
  if (layer.qNorm && c.qNorm) dqProj = rmsNormBackward(layer.qNorm, c.qNorm, dqProj, N * H, hd);
  if (layer.kNorm && c.kNorm) dkProj = rmsNormBackward(layer.kNorm, c.kNorm, dkProj, N * KV, hd);
  const dn1 = add(
    add(linearBackward(proj.q_proj, c.q, dqProj, N), linearBackward(proj.k_proj, c.k, dkProj, N)),
    linearBackward(proj.v_proj, c.v, dv, N),
  );
  return add(dx2, rmsNormBackward(layer.inputNorm, c.norm1, dn1, N, D));
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The whole model: embedding → layers → model.norm (the hidden states a head reads) → lm_head → shifted mean
// cross-entropy.

interface HiddenCache {
  batch: Batch;
  dims: Dims;
  layers: LayerCache[];
  finalNorm: NormCache;
}

interface ModelCache extends HiddenCache {
  /** [N, D] the final norm's output, lm_head's input */
  hidden: Float64Array;
  /** [N, V] softmax of the logits */
  probs: Float64Array;
}

/** Embedding, layers and model.norm: the final hidden states [N, D]. */
function hiddenForward(model: Model, batch: Batch): { hidden: Float64Array; cache: HiddenCache } {
  const { config } = model;
  const D = config.hiddenSize;
  const N = batch.B * batch.T;
  const dims: Dims = { B: batch.B, T: batch.T, N, D, H: config.numHeads, KV: config.numKvHeads, hd: config.headDim };

  let x: Float64Array = new Float64Array(N * D); // [N, D] the residual stream
  for (let n = 0; n < N; n++) x.set(model.embed.value.subarray(batch.tokens[n] * D, (batch.tokens[n] + 1) * D), n * D);
  const layers: LayerCache[] = [];
  for (const layer of model.layers) {
    const { out, cache } = layerForward(model, layer, x, dims);
    layers.push(cache);
    x = out;
  }
  const finalNorm = rmsNormForward(x, model.finalNorm.value, N, D, config.rmsNormEps);
  return { hidden: finalNorm.y, cache: { batch, dims, layers, finalNorm: finalNorm.cache } };
}

function modelForward(model: Model, batch: Batch): { loss: number; cache: ModelCache } {
  const { hidden, cache } = hiddenForward(model, batch);
  const { N, D } = cache.dims;
  const V = model.config.vocabSize;
  const logits = matmulTransposed(hidden, model.lmHead.value, N, D, V); // [N, V]

  // Cross-entropy: -log softmax(logits[n])[target], averaged over the counted positions of the whole batch.
  const probs = new Float64Array(N * V);
  let total = 0;
  for (let n = 0; n < N; n++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[n * V + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[n * V + j] - max);
    for (let j = 0; j < V; j++) probs[n * V + j] = Math.exp(logits[n * V + j] - max) / sum;
    const target = batch.targets[n];
    if (target !== IGNORE_INDEX) total += max + Math.log(sum) - logits[n * V + target];
  }
  const loss = total / batch.count;
  return { loss, cache: { ...cache, hidden, probs } };
}

function modelBackward(model: Model, cache: ModelCache): void {
  const { batch, dims, probs } = cache;
  const { N, D } = dims;
  const V = model.config.vocabSize;

  // d loss / d logits = (softmax - onehot(target)) / count on counted positions, 0 elsewhere.
  const dLogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const target = batch.targets[n];
    if (target === IGNORE_INDEX) continue;
    for (let j = 0; j < V; j++) dLogits[n * V + j] = probs[n * V + j] / batch.count;
    dLogits[n * V + target] -= 1 / batch.count;
  }
  const dHidden = new Float64Array(N * D);
  addMatmul(dHidden, dLogits, model.lmHead.value, N, D, V);
  if (model.lmHead.grad) addOuter(model.lmHead.grad, dLogits, cache.hidden, N, D, V);
  hiddenBackward(model, cache, dHidden);
}

/** From d loss / d the final hidden states back through model.norm, the layers and the embedding. */
function hiddenBackward(model: Model, cache: HiddenCache, dHidden: Float64Array): void {
  const { batch, dims } = cache;
  const { N, D } = dims;
  let dx = rmsNormBackward(model.finalNorm, cache.finalNorm, dHidden, N, D);
  for (let l = model.layers.length - 1; l >= 0; l--) {
    dx = layerBackward(model, model.layers[l], cache.layers[l], dx, dims);
  }
  // The embedding lookup scatters back: each position's gradient lands on its token's row.
  const dEmbed = model.embed.grad;
  if (dEmbed) {
    for (let n = 0; n < N; n++) {
      const row = batch.tokens[n] * D;
      for (let i = 0; i < D; i++) dEmbed[row + i] += dx[n * D + i];
    }
  }
}
