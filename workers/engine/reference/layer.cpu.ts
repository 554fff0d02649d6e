import { type AttentionDims, attentionBackwardCpu, attentionForwardCpu } from '../kernels/attention.cpu';
import { type LowRankCpu, matmulCpu } from '../kernels/matmul.cpu';
import { rmsnormBackwardCpu, rmsnormForwardCpu } from '../kernels/rmsnorm.cpu';
import type { Rotation } from '../kernels/rope';
import { ropeCpu } from '../kernels/rope.cpu';
import { gegluBackwardCpu, gegluCpu, swigluBackwardCpu, swigluCpu } from '../kernels/swiglu.cpu';
import type { Layer, Linear, Model, Param } from './model.cpu';

/**
 * One decoder layer of the reference, forward beside backward, on the kernels' float64 CPU twins; N positions, D
 * hiddenSize, H query heads, KV key/value heads, hd headDim, r LoRA rank.
 */

// ---------------------------------------------------------------------------------------------------------------
// Linear + LoRA, on the matmul twin. W is always stored [out, in], as nn.Linear keeps it; LoRA's second product
// rides on the base one as the twin's low-rank term, as it does on the GPU.

/** C = A · B^T: y = x W^T */
const A_BT = { transA: false, transB: true };
/** C = A · B: dx = dy W */
const A_B = { transA: false, transB: false };
/** C = A^T · B: dW = dy^T x */
const AT_B = { transA: true, transB: false };

export interface LinearCache {
  /** [N, in] the input */
  x: Float64Array;
  /** [N, in] the LoRA path's input: x, or dropout(x) */
  xl: Float64Array;
  /** [N, r] xl A^T, the LoRA bottleneck (null without LoRA) */
  xa: Float64Array | null;
}

/** y[N, out] = x W^T + s (xl A^T) B^T + bias, xl = dropout(x) */
export function linearForward(lin: Linear, x: Float64Array, N: number): { y: Float64Array; cache: LinearCache } {
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
export function linearBackward(lin: Linear, cache: LinearCache, dy: Float64Array, N: number): Float64Array {
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

export interface NormCache {
  x: Float64Array;
  /** [rows] 1 / sqrt(mean(x^2) + eps) */
  rstd: Float64Array;
}

/** y[rows, dim]; the cache keeps x and rstd for the backward. */
export function rmsNormForward(x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number) {
  const { y, rstd } = rmsnormForwardCpu(x, w, rows, dim, eps);
  return { y, cache: { x, rstd } satisfies NormCache };
}

/** dx[rows, dim]; accumulates dw (where not frozen). */
export function rmsNormBackward(
  param: Param,
  cache: NormCache,
  dy: Float64Array,
  rows: number,
  dim: number,
): Float64Array {
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
// Gemma: x2 = x + post_attention_layernorm(o_proj(...)), n2 = pre_feedforward_layernorm(x2), GELU (tanh) for SiLU,
// out = x2 + post_feedforward_layernorm(down_proj(...)); local layers attend within the sliding window.
// Attention is the attention twin's (probabilities kept), the gated MLP the swiglu twin's.

export interface LayerCache {
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
  /** Gemma's norms of the attention's and the MLP's outputs */
  attnOutNorm: NormCache | null;
  mlpOutNorm: NormCache | null;
  norm2: NormCache;
  gate: LinearCache;
  up: LinearCache;
  /** [N, F] gate_proj and up_proj outputs */
  g: Float64Array;
  u: Float64Array;
  down: LinearCache;
}

export interface Dims extends AttentionDims {
  N: number;
  D: number;
}

/** The attention's dims in a layer: Gemma's score scale, and its window on local layers. */
export function layerDims(model: Model, layer: Layer, d: Dims): Dims {
  const gemma = model.config.gemma;
  if (!gemma) return d;
  return { ...d, scale: gemma.queryPreAttnScalar ** -0.5, window: layer.sliding ? gemma.slidingWindow : undefined };
}

/** y = norm(y) where the layer has the norm (Gemma), else y as it is. */
function normed(norm: Param | null, y: Float64Array, N: number, D: number, eps: number) {
  if (!norm) return { y, cache: null };
  return rmsNormForward(y, norm.value, N, D, eps);
}

/** x: [N, D] → [N, D] */
export function layerForward(model: Model, layer: Layer, x: Float64Array, dims: Dims, rope: RotaryTables) {
  const d = layerDims(model, layer, dims);
  const { N, D, H, KV, hd } = d;
  const eps = model.config.rmsNormEps;
  const { proj } = layer;
  const gelu = model.config.gemma !== null;

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
  const attnOut = normed(layer.attnOutNorm, o.y, N, D, eps);
  const x2 = add(x, attnOut.y);

  const norm2 = rmsNormForward(x2, layer.postNorm.value, N, D, eps);
  const gate = linearForward(proj.gate_proj, norm2.y, N); // [N, F]
  const up = linearForward(proj.up_proj, norm2.y, N); // [N, F]
  const act = gelu ? gegluCpu(gate.y, up.y) : swigluCpu(gate.y, up.y);
  const down = linearForward(proj.down_proj, act, N); // [N, D]
  const mlpOut = normed(layer.mlpOutNorm, down.y, N, D, eps);
  const out = add(x2, mlpOut.y);

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
    attnOutNorm: attnOut.cache,
    mlpOutNorm: mlpOut.cache,
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
export function layerBackward(
  model: Model,
  layer: Layer,
  c: LayerCache,
  dOut: Float64Array,
  dims: Dims,
  rope: RotaryTables,
): Float64Array {
  const d = layerDims(model, layer, dims);
  const { N, D, H, KV, hd } = d;
  const { proj } = layer;
  const unnormed = (norm: Param | null, cache: NormCache | null, dy: Float64Array) =>
    norm && cache ? rmsNormBackward(norm, cache, dy, N, D) : dy;

  // MLP branch; the residual passes dOut straight through to x2.
  const dDown = unnormed(layer.mlpOutNorm, c.mlpOutNorm, dOut);
  const dAct = linearBackward(proj.down_proj, c.down, dDown, N);
  const { dg, du } = model.config.gemma ? gegluBackwardCpu(c.g, c.u, dAct) : swigluBackwardCpu(c.g, c.u, dAct);
  const dn2 = add(linearBackward(proj.gate_proj, c.gate, dg, N), linearBackward(proj.up_proj, c.up, du, N));
  const dx2 = add(dOut, rmsNormBackward(layer.postNorm, c.norm2, dn2, N, D));

  // Attention branch; the residual passes dx2 straight through to x.
  const dO = unnormed(layer.attnOutNorm, c.attnOutNorm, dx2);
  const dAttention = linearBackward(proj.o_proj, c.o, dO, N);
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
export function accumulate(into: Float64Array | null, g: ArrayLike<number>): void {
  if (into) for (let i = 0; i < into.length; i++) into[i] += g[i];
}
