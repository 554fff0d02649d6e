/**
 * The float64 CPU reference of the whole model: forward, loss and backward of a llama / qwen2 / qwen3 decoder
 * with optional LoRA adapters, computed exactly as Hugging Face transformers + PEFT do (they in fp32, we in
 * float64). It exists to check the GPU engine, so it favours clarity over speed: every layer's forward sits beside
 * its backward, activations are plain row-major Float64Arrays, and shapes are written in the comments. Each
 * operation's arithmetic is its kernel's float64 CPU twin (kernels/*.cpu.ts), so one CPU statement of it is
 * checked both against its GPU kernel and, here, against finite differences.
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
import { crossEntropyCpu } from '../kernels/cross-entropy.cpu';
import { embeddingBackwardCpu, embeddingCpu } from '../kernels/embedding.cpu';
import { type LowRankCpu, matmulCpu } from '../kernels/matmul.cpu';
import { rmsnormBackwardCpu, rmsnormForwardCpu } from '../kernels/rmsnorm.cpu';
import type { Rotation } from '../kernels/rope';
import { ropeCpu } from '../kernels/rope.cpu';
import { scoreHeadBackwardCpu, scoreHeadCpu } from '../kernels/score-head.cpu';
import { swigluBackwardCpu, swigluCpu } from '../kernels/swiglu.cpu';
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
  const { B, T } = cache.dims;
  if (B % 2 !== 0 || positions.length !== B) throw new Error('reference: reward rows come in pairs, one position each');
  const rows = positions.map((t, b) => b * T + t); // [B] the hidden row each sequence is scored at
  const scores = scoreHeadCpu(hidden, head, rows);
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
  const { dx: dHidden, dw: headGrad } = scoreHeadBackwardCpu(hidden, head, rows, dScores);
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
  /** [V, D], no bias or LoRA: embed_tokens' weight and gradient when tied, so both uses accumulate into one */
  lmHead: Linear;
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
// Linear + LoRA, on the matmul twin. W is always stored [out, in], as nn.Linear keeps it; LoRA's second product
// rides on the base one as the twin's low-rank term, as it does on the GPU.

/** C = A · B^T: y = x W^T */
const A_BT = { transA: false, transB: true };
/** C = A · B: dx = dy W */
const A_B = { transA: false, transB: false };
/** C = A^T · B: dW = dy^T x */
const AT_B = { transA: true, transB: false };

interface LinearCache {
  /** [N, in] the input */
  x: Float64Array;
  /** [N, in] the LoRA path's input: x, or dropout(x) */
  xl: Float64Array;
  /** [N, r] xl A^T, the LoRA bottleneck (null without LoRA) */
  xa: Float64Array | null;
}

/** y[N, out] = x W^T + s (xl A^T) B^T + bias, xl = dropout(x) */
function linearForward(lin: Linear, x: Float64Array, N: number): { y: Float64Array; cache: LinearCache } {
  const { inDim, outDim, lora } = lin;
  let xl = x;
  let xa: Float64Array | null = null;
  let lowRank: LowRankCpu | undefined;
  if (lora) {
    const { mask } = lora;
    if (mask) xl = x.map((v, i) => v * mask[i]);
    xa = new Float64Array(N * lora.rank);
    matmulCpu(xl, lora.A, xa, { M: N, N: lora.rank, K: inDim }, A_BT);
    lowRank = { l: xa, r: lora.B, rank: lora.rank, scale: lora.scale };
  }
  const y = new Float64Array(N * outDim);
  matmulCpu(x, lin.weight, y, { M: N, N: outDim, K: inDim }, A_BT, lowRank);
  if (lin.bias) {
    for (let n = 0; n < N; n++) for (let o = 0; o < outDim; o++) y[n * outDim + o] += lin.bias[o];
  }
  return { y, cache: { x, xl, xa } };
}

/**
 * dx[N, in] = dy W + (s (dy B) A) * mask; accumulates dW += dy^T x, dbias, dB += s dy^T xa, dA += (s dy B)^T xl
 * (where not frozen).
 */
function linearBackward(lin: Linear, cache: LinearCache, dy: Float64Array, N: number): Float64Array {
  const { inDim, outDim, lora, grad } = lin;
  if (grad.weight) matmulCpu(dy, cache.x, grad.weight, { M: outDim, N: inDim, K: N, beta: 1 }, AT_B);
  if (grad.bias) {
    for (let n = 0; n < N; n++) for (let o = 0; o < outDim; o++) grad.bias[o] += dy[n * outDim + o];
  }
  let lowRank: LowRankCpu | undefined;
  if (lora && cache.xa) {
    const { rank, scale } = lora;
    if (grad.B) matmulCpu(dy, cache.xa, grad.B, { M: outDim, N: rank, K: N, alpha: scale, beta: 1 }, AT_B);
    const dxa = new Float64Array(N * rank); // [N, r]
    matmulCpu(dy, lora.B, dxa, { M: N, N: rank, K: outDim, alpha: scale }, A_B);
    if (grad.A) matmulCpu(dxa, cache.xl, grad.A, { M: rank, N: inDim, K: N, beta: 1 }, AT_B);
    lowRank = { l: dxa, r: lora.A, rank, scale: 1, mask: lora.mask ?? undefined };
  }
  const dx = new Float64Array(N * inDim);
  matmulCpu(dy, lin.weight, dx, { M: N, N: inDim, K: outDim }, A_B, lowRank);
  return dx;
}

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm over rows of `dim`, on the rmsnorm twin: y = w * x / sqrt(mean(x^2) + eps). Used on [N, D] and, for
// qwen3, on [N * heads, hd].

interface NormCache {
  x: Float64Array;
  /** [rows] 1 / sqrt(mean(x^2) + eps) */
  rstd: Float64Array;
}

/** y[rows, dim]; the cache keeps x and rstd for the backward. */
function rmsNormForward(x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number) {
  const { y, rstd } = rmsnormForwardCpu(x, w, rows, dim, eps);
  return { y, cache: { x, rstd } satisfies NormCache };
}

/** dx[rows, dim]; accumulates dw (where not frozen). */
function rmsNormBackward(param: Param, cache: NormCache, dy: Float64Array, rows: number, dim: number): Float64Array {
  const { dx, dw } = rmsnormBackwardCpu(cache.x, param.value, cache.rstd, dy, rows, dim);
  accumulate(param.grad, dw);
  return dx;
}

// ---------------------------------------------------------------------------------------------------------------
// Rotary embeddings, on the rope twin: HF's rotate_half convention, the pairs being (i, i + hd/2), not adjacent
// elements.

/** [T, hd / 2] each: cos and sin of t * invFreq[i], the rope twin's tables in float64 (the GPU's are fp32). */
export interface RotaryTables {
  cos: Float64Array;
  sin: Float64Array;
}

export function rotaryTables(invFreq: Float64Array, T: number): RotaryTables {
  const half = invFreq.length;
  const angle = (j: number) => Math.floor(j / half) * invFreq[j % half];
  return {
    cos: Float64Array.from({ length: T * half }, (_, j) => Math.cos(angle(j))),
    sin: Float64Array.from({ length: T * half }, (_, j) => Math.sin(angle(j))),
  };
}

/**
 * x [N, heads * hd] with every head rotated by its position's angles. 'inverse' is also the backward: a rotation's
 * transpose is its inverse.
 */
function rotate(rotation: Rotation, x: Float64Array, heads: number, d: Dims, rope: RotaryTables): Float64Array {
  return ropeCpu(rotation, x, rope.cos, rope.sin, { batch: d.B, seq: d.T, heads, headDim: d.hd });
}

// ---------------------------------------------------------------------------------------------------------------
// One decoder layer:
//   n1 = input_layernorm(x);  x2 = x + o_proj(attention(rope(qnorm(q_proj(n1))), rope(knorm(k_proj(n1))), v_proj(n1)))
//   n2 = post_attention_layernorm(x2);  out = x2 + down_proj(silu(gate_proj(n2)) * up_proj(n2))
// Attention is the attention twin's (probabilities kept), SwiGLU the swiglu twin's.

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
function layerForward(model: Model, layer: Layer, x: Float64Array, d: Dims, rope: RotaryTables) {
  const { N, D, H, KV, hd } = d;
  const eps = model.config.rmsNormEps;
  const { proj } = layer;

  const norm1 = rmsNormForward(x, layer.inputNorm.value, N, D, eps);
  const q = linearForward(proj.q_proj, norm1.y, N); // [N, H * hd]
  const k = linearForward(proj.k_proj, norm1.y, N); // [N, KV * hd]
  const v = linearForward(proj.v_proj, norm1.y, N); // [N, KV * hd]
  const qNorm = layer.qNorm ? rmsNormForward(q.y, layer.qNorm.value, N * H, hd, eps) : null;
  const kNorm = layer.kNorm ? rmsNormForward(k.y, layer.kNorm.value, N * KV, hd, eps) : null;
  const qRot = rotate('forward', qNorm?.y ?? q.y, H, d, rope);
  const kRot = rotate('forward', kNorm?.y ?? k.y, KV, d, rope);
  const attention = attentionForwardCpu(qRot, kRot, v.y, d); // [N, H * hd]
  const o = linearForward(proj.o_proj, attention.out, N); // [N, D]
  const x2 = add(x, o.y);

  const norm2 = rmsNormForward(x2, layer.postNorm.value, N, D, eps);
  const gate = linearForward(proj.gate_proj, norm2.y, N); // [N, F]
  const up = linearForward(proj.up_proj, norm2.y, N); // [N, F]
  const down = linearForward(proj.down_proj, swigluCpu(gate.y, up.y), N); // [N, D]
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
function layerBackward(layer: Layer, c: LayerCache, dOut: Float64Array, d: Dims, rope: RotaryTables): Float64Array {
  const { N, D, H, KV, hd } = d;
  const { proj } = layer;

  // MLP branch; the residual passes dOut straight through to x2.
  const dAct = linearBackward(proj.down_proj, c.down, dOut, N);
  const { dg, du } = swigluBackwardCpu(c.g, c.u, dAct);
  const dn2 = add(linearBackward(proj.gate_proj, c.gate, dg, N), linearBackward(proj.up_proj, c.up, du, N));
  const dx2 = add(dOut, rmsNormBackward(layer.postNorm, c.norm2, dn2, N, D));

  // Attention branch; the residual passes dx2 straight through to x.
  const dAttention = linearBackward(proj.o_proj, c.o, dx2, N);
  const { dq, dk, dv } = attentionBackwardCpu(dAttention, c.qRot, c.kRot, c.vOut, c.probs, d);
  let dqProj = rotate('inverse', dq, H, d, rope);
  let dkProj = rotate('inverse', dk, KV, d, rope);
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

/** into += g (nothing when frozen): the twins return fresh gradients, a parameter's accumulate over its uses. */
function accumulate(into: Float64Array | null, g: ArrayLike<number>): void {
  if (into) for (let i = 0; i < into.length; i++) into[i] += g[i];
}

// ---------------------------------------------------------------------------------------------------------------
// The whole model: embedding → layers → model.norm (the hidden states a head reads) → lm_head → shifted mean
// cross-entropy.

interface HiddenCache {
  batch: Batch;
  dims: Dims;
  rope: RotaryTables;
  layers: LayerCache[];
  finalNorm: NormCache;
}

interface ModelCache extends HiddenCache {
  /** lm_head's input: the final norm's output [N, D] */
  lmHead: LinearCache;
  /** [N, V] d loss / d logits */
  dLogits: Float64Array;
}

/** Embedding, layers and model.norm: the final hidden states [N, D]. */
function hiddenForward(model: Model, batch: Batch): { hidden: Float64Array; cache: HiddenCache } {
  const { config } = model;
  const D = config.hiddenSize;
  const N = batch.B * batch.T;
  const dims: Dims = { B: batch.B, T: batch.T, N, D, H: config.numHeads, KV: config.numKvHeads, hd: config.headDim };
  const rope = rotaryTables(model.invFreq, batch.T);

  let x = embeddingCpu(batch.tokens, model.embed.value, D); // [N, D] the residual stream
  const layers: LayerCache[] = [];
  for (const layer of model.layers) {
    const { out, cache } = layerForward(model, layer, x, dims, rope);
    layers.push(cache);
    x = out;
  }
  const finalNorm = rmsNormForward(x, model.finalNorm.value, N, D, config.rmsNormEps);
  return { hidden: finalNorm.y, cache: { batch, dims, rope, layers, finalNorm: finalNorm.cache } };
}

function modelForward(model: Model, batch: Batch): { loss: number; cache: ModelCache } {
  const { hidden, cache } = hiddenForward(model, batch);
  const lmHead = linearForward(model.lmHead, hidden, cache.dims.N); // logits [N, V]
  // loss = Σ_n w_n (lse_n - logits[n, target_n]), w_n = 1 / count where counted, 0 elsewhere: the batch's mean.
  const weights = Float64Array.from(batch.targets, (target) => (target === IGNORE_INDEX ? 0 : 1 / batch.count));
  const ce = crossEntropyCpu(lmHead.y, batch.targets, weights, model.config.vocabSize);
  const loss = ce.loss.reduce((sum, l) => sum + l, 0);
  return { loss, cache: { ...cache, lmHead: lmHead.cache, dLogits: ce.dLogits } };
}

function modelBackward(model: Model, cache: ModelCache): void {
  hiddenBackward(model, cache, linearBackward(model.lmHead, cache.lmHead, cache.dLogits, cache.dims.N));
}

/** From d loss / d the final hidden states back through model.norm, the layers and the embedding. */
function hiddenBackward(model: Model, cache: HiddenCache, dHidden: Float64Array): void {
  const { batch, dims, rope } = cache;
  const { N, D } = dims;
  let dx = rmsNormBackward(model.finalNorm, cache.finalNorm, dHidden, N, D);
  for (let l = model.layers.length - 1; l >= 0; l--) {
    dx = layerBackward(model.layers[l], cache.layers[l], dx, dims, rope);
  }
  // The embedding lookup scatters back: each position's gradient lands on its token's row.
  if (model.embed.grad) accumulate(model.embed.grad, embeddingBackwardCpu(batch.tokens, dx, model.config.vocabSize, D));
}
