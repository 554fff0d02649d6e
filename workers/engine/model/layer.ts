import { layerAttention, type Projection, shortDims } from '../../../core/model-config';
import type { Op } from '../gpu/ops';
import type { AttentionShape } from '../kernels/attention';
import type { LowRank } from '../kernels/matmul';
import type { Slabs } from '../kernels/rmsnorm';
import type { Rotation } from '../kernels/rope';
import type { GatedActivation } from '../kernels/swiglu';
import type { EngineKernels } from './kernels';
import type { Linear } from './linear';
import type { LoraPlan } from './lora-plan';
import type { Kept, StepBuffers, StepShape } from './step-buffers';
import type { GpuWeights } from './weights';

/**
 * One decoder layer of a training step, its forward beside its backward (N tokens, d hidden, f intermediate, H / KV
 * heads of hd):
 *   xn1 = rmsnorm(xIn)                       [N, d]
 *   q, k, v = xn1 · W_{q,k,v}ᵀ (+ LoRA, + b)  [N, H*hd], [N, KV*hd]; qwen3 and Gemma norm q and k per head
 *   attn = attention(rope(q), rope(k), v)    [N, H*hd]
 *   xMid = xIn + attn · W_oᵀ                 [N, d]
 *   xn2 = rmsnorm(xMid)                      [N, d]
 *   act = silu(xn2 · W_gateᵀ) · (xn2 · W_upᵀ) [N, f]
 *   xOut = xMid + act · W_downᵀ              [N, d]   (the next layer's xIn)
 * Gemma: xMid = xIn + rmsnorm(attn · W_oᵀ), xOut = xMid + rmsnorm(act · W_downᵀ) (the products kept as attnOut and
 * mlpOut), GELU (tanh) for SiLU, attention scaled by query_pre_attn_scalar^-½ and, on local layers, within the
 * sliding window with the local rotary tables; its norms' weights are held as 1 + w (weights.ts).
 */

/** What a layer records its ops with. */
export interface StepContext {
  k: EngineKernels;
  w: GpuWeights;
  shape: StepShape;
  kept: Kept;
  buffers: StepBuffers;
  lora: LoraPlan;
  linear: Linear;
  /** Full mode's gradient buffer of a weight (by checkpoint key, chunk index); null when base weights are frozen. */
  grad: ((key: string, index?: number) => GPUBuffer) | null;
}

const QKV: Projection[] = ['q_proj', 'k_proj', 'v_proj'];
const GATE_UP: Projection[] = ['gate_proj', 'up_proj'];

/**
 * Layer l's forward from xIn, plus `residual`: the layer before's last product in partial sums, for the input norm
 * to add. Writes the next layer's input (the residual leaving this one) as its xIn plus the returned partial sums.
 * As a `replay` (recompute, in the backward) xIn is whole and the next layer's input is left alone.
 */
export function layerForward(
  c: StepContext,
  ops: Op[],
  l: number,
  from: { residual?: Slabs; replay?: boolean },
): Slabs | undefined {
  const { k, lora, linear } = c;
  const { d, f, H, KV, hd, eps } = shortDims(c.w.config);
  const N = linear.rows;
  const { layers, s } = c.buffers;
  const a = layers[l];
  const lw = c.w.layers[l];
  const next = l + 1 < layers.length ? layers[l + 1].xIn : s.xOut;

  // xn1 = rmsnorm(xIn + residual); the residual carried into xMid, for o_proj to add onto.
  const qkvLora = lora.normInputs(l, QKV, a.xn1);
  const inputNorm = { x: a.xIn, w: lw.inputNorm, y: a.xn1, rstd: a.rstd1, rows: N, dim: d, eps };
  ops.push(k.rmsnorm.forwardOp({ ...inputNorm, carry: a.xMid, xSlabs: from.residual, lowRankIn: qkvLora?.lowRankIn }));
  // q, k, v = xn1 · Wᵀ + s (xn1 Aᵀ) Bᵀ + b
  const qkv: Array<[Projection, GPUBuffer]> = [
    ['q_proj', a.qPre ?? s.q],
    ['k_proj', a.kPre ?? s.k],
    ['v_proj', a.v],
  ];
  linear.forward(ops, l, qkv, a.xn1, qkvLora?.lowRanks ?? lora.inputs(ops, l, QKV, a.xn1));
  if (a.qPre && a.kPre && a.rstdQ && a.rstdK && lw.qNorm && lw.kNorm) {
    ops.push(k.rmsnorm.forwardOp({ x: a.qPre, w: lw.qNorm, y: s.qn, rstd: a.rstdQ, rows: N * H, dim: hd, eps }));
    ops.push(k.rmsnorm.forwardOp({ x: a.kPre, w: lw.kNorm, y: s.kn, rstd: a.rstdK, rows: N * KV, dim: hd, eps }));
    ops.push(rope(c, l, 'forward', { x: s.qn, y: a.qr }, { x: s.kn, y: a.kr }));
  } else {
    ops.push(rope(c, l, 'forward', { x: s.q, y: a.qr }, { x: s.k, y: a.kr }));
  }
  // attn, lse = attention(qr, kr, v)
  ops.push(k.attention.forwardOp({ q: a.qr, k: a.kr, v: a.v, out: a.attn, lse: a.lse }, attentionShape(c, l)));
  // xMid += attn · W_oᵀ + s (attn A_oᵀ) B_oᵀ, maybe left in partial sums (Gemma: xMid += rmsnorm(that))
  const o = lora.inputs(ops, l, ['o_proj'], a.attn).o_proj;
  const attended = blockOutput(c, ops, l, { projection: 'o_proj', x: a.attn, onto: a.xMid, lowRank: o });

  // xn2 = rmsnorm(xMid + attended); the residual carried on into the next layer's input, for down_proj to add onto.
  const gateUpLora = lora.normInputs(l, GATE_UP, a.xn2);
  const postNorm = { x: a.xMid, w: lw.postNorm, y: a.xn2, rstd: a.rstd2, rows: N, dim: d, eps };
  const carry = from.replay ? undefined : next;
  ops.push(k.rmsnorm.forwardOp({ ...postNorm, carry, xSlabs: attended, lowRankIn: gateUpLora?.lowRankIn }));
  // gate, up = xn2 · Wᵀ + s (xn2 Aᵀ) Bᵀ;  act = silu(gate) · up (Gemma: gelu)
  const gateUp: Array<[Projection, GPUBuffer]> = [
    ['gate_proj', a.gate],
    ['up_proj', a.up],
  ];
  linear.forward(ops, l, gateUp, a.xn2, gateUpLora?.lowRanks ?? lora.inputs(ops, l, GATE_UP, a.xn2));
  ops.push(k.swiglu.forwardOp({ gate: a.gate, up: a.up, act: a.act, n: N * f, activation: activationOf(c) }));
  // next += act · W_downᵀ + s (act A_downᵀ) B_downᵀ; a replay needs down_proj's x Aᵀ (its dB), not its output.
  const down = lora.inputs(ops, l, ['down_proj'], a.act).down_proj;
  const onto = from.replay ? null : next;
  return blockOutput(c, ops, l, { projection: 'down_proj', x: a.act, onto, lowRank: down });
}

/**
 * A block's last product onto the residual stream `onto` (null in a replay: nothing is added), returning the
 * partial sums it may leave: y = x · Wᵀ + s (x Aᵀ) Bᵀ added as it is; Gemma's y kept (attnOut, mlpOut) and its
 * norm added, rmsnorm(y) with the rstd its backward reads.
 */
function blockOutput(
  c: StepContext,
  ops: Op[],
  l: number,
  o: { projection: 'o_proj' | 'down_proj'; x: GPUBuffer; onto: GPUBuffer | null; lowRank?: LowRank },
): Slabs | undefined {
  const norm = outputNorm(c, l, o.projection);
  if (!norm) {
    if (!o.onto) return undefined;
    return c.linear.forwardOnto(ops, l, o.projection, o.x, o.onto, o.lowRank);
  }
  c.linear.forward(ops, l, [[o.projection, norm.x]], o.x, { [o.projection]: o.lowRank });
  const { d, eps } = shortDims(c.w.config);
  // A replay only needs rstd: its y goes to scratch the backward overwrites first.
  const y = o.onto ?? (c.buffers.d?.dOut as GPUBuffer);
  const rows = c.linear.rows;
  ops.push(c.k.rmsnorm.forwardOp({ ...norm, y, rows, dim: d, eps, accumulate: o.onto !== null }));
  return undefined;
}

/** Gemma's norm of a block's output: its input (the product kept), weight and rstd; null for the others. */
function outputNorm(c: StepContext, l: number, projection: 'o_proj' | 'down_proj') {
  const a = c.buffers.layers[l];
  const lw = c.w.layers[l];
  if (projection === 'o_proj') {
    return a.attnOut && a.rstdA && lw.attnOutNorm ? { x: a.attnOut, w: lw.attnOutNorm, rstd: a.rstdA } : null;
  }
  return a.mlpOut && a.rstdM && lw.mlpOutNorm ? { x: a.mlpOut, w: lw.mlpOutNorm, rstd: a.rstdM } : null;
}

function activationOf(c: StepContext): GatedActivation {
  return c.w.config.gemma ? 'gelu' : 'silu';
}

/**
 * Layer l's backward, from dx = d(loss)/d(residual leaving the layer) to dx = d(loss)/d(xIn), replaying the
 * layer's forward first where only its input was kept. LoRA's d(x Aᵀ) of the layer before's down_proj rides on
 * the last norm backward.
 */
export function layerBackward(c: StepContext, ops: Op[], l: number): void {
  const { k, lora, grad } = c;
  const { d, f, H, KV, hd } = shortDims(c.w.config);
  const N = c.linear.rows;
  const { layers } = c.buffers;
  const g = c.buffers.d;
  if (!g) throw new Error('a forward-only step has no backward');
  const a = layers[l];
  const lw = c.w.layers[l];
  const p = `model.layers.${l}`;
  if (c.kept === 'inputs') layerForward(c, ops, l, { replay: true });

  // MLP: dact = dy · W_down (+ LoRA), dy = dx (Gemma: its norm's input gradient);  dgate, dup = swiglu'(dact);
  // dxn2 = dgate · W_gate + dup · W_up (+ LoRA)
  const dDown = blockOutputBackward(c, ops, l, 'down_proj');
  const dact = projectionsBackward(c, ops, l, [['down_proj', dDown]], a.act, g.dact, true);
  const swiglu = { gate: a.gate, up: a.up, dgate: g.dgate, dup: g.dup, n: N * f, activation: activationOf(c) };
  ops.push(k.swiglu.backwardOp({ ...swiglu, dact: dact.sum, dactSlabs: dact.slabs }));
  const gateUp: Array<[Projection, GPUBuffer]> = [
    ['gate_proj', g.dgate],
    ['up_proj', g.dup],
  ];
  const dxn2 = projectionsBackward(c, ops, l, gateUp, a.xn2, g.dxn, true);
  lora.flush(ops);
  // dx += rmsnorm'(dxn2): d(loss)/d(xMid), also o_proj's output gradient (its d(x Aᵀ) written beside it on GPUs)
  const gemma = c.w.config.gemma !== null;
  const postNorm = { x: a.xMid, w: lw.postNorm, rstd: a.rstd2, rows: N, dim: d };
  const o = gemma ? undefined : lora.residualOut(l, 'o_proj');
  ops.push(
    k.rmsnorm.backwardOp({ ...postNorm, dy: dxn2.sum, dySlabs: dxn2.slabs, dx: g.dx, accumulate: true, lowRankOut: o }),
  );
  if (grad) {
    const key = `${p}.${gemma ? 'pre_feedforward' : 'post_attention'}_layernorm.weight`;
    ops.push(k.rmsnorm.weightGradOp({ ...postNorm, dy: g.dxn, dw: grad(key) }));
  }

  // Attention: dattn = dy · W_o (+ LoRA), dy = dx (Gemma: its norm's);  dq, dk, dv = attention'(dattn), unrotated
  // (and un-normed)
  projectionsBackward(c, ops, l, [['o_proj', blockOutputBackward(c, ops, l, 'o_proj')]], a.attn, g.dattn, false);
  const forward = { q: a.qr, k: a.kr, v: a.v, out: a.attn, dout: g.dattn, lse: a.lse };
  const grads = { delta: g.delta, dq: g.dqr, dk: g.dkr, dv: g.dv };
  ops.push(...k.attention.backwardOps(forward, grads, attentionShape(c, l)));
  ops.push(rope(c, l, 'inverse', { x: g.dqr, y: a.qPre ? g.dqn : g.dq }, { x: g.dkr, y: a.kPre ? g.dkn : g.dk }));
  if (a.qPre && a.kPre && a.rstdQ && a.rstdK && lw.qNorm && lw.kNorm) {
    const qNorm = { x: a.qPre, w: lw.qNorm, rstd: a.rstdQ, rows: N * H, dim: hd };
    const kNorm = { x: a.kPre, w: lw.kNorm, rstd: a.rstdK, rows: N * KV, dim: hd };
    ops.push(k.rmsnorm.backwardOp({ ...qNorm, dy: g.dqn, dx: g.dq }));
    ops.push(k.rmsnorm.backwardOp({ ...kNorm, dy: g.dkn, dx: g.dk }));
    if (grad) {
      ops.push(k.rmsnorm.weightGradOp({ ...qNorm, dy: g.dqn, dw: grad(`${p}.self_attn.q_norm.weight`) }));
      ops.push(k.rmsnorm.weightGradOp({ ...kNorm, dy: g.dkn, dw: grad(`${p}.self_attn.k_norm.weight`) }));
    }
  }
  // dxn1 = dq · W_q + dk · W_k + dv · W_v (+ LoRA)
  const qkv: Array<[Projection, GPUBuffer]> = [
    ['q_proj', g.dq],
    ['k_proj', g.dk],
    ['v_proj', g.dv],
  ];
  const dxn1 = projectionsBackward(c, ops, l, qkv, a.xn1, g.dxn, true);
  lora.flush(ops);
  // dx += rmsnorm'(dxn1): d(loss)/d(xIn), also the layer before's down_proj's output gradient
  const inputNorm = { x: a.xIn, w: lw.inputNorm, rstd: a.rstd1, rows: N, dim: d };
  // Gemma's down_proj output gradient is its norm's, written there.
  const down = l > 0 && !gemma ? lora.residualOut(l - 1, 'down_proj') : undefined;
  ops.push(
    k.rmsnorm.backwardOp({
      ...inputNorm,
      dy: dxn1.sum,
      dySlabs: dxn1.slabs,
      dx: g.dx,
      accumulate: true,
      lowRankOut: down,
    }),
  );
  if (grad) ops.push(k.rmsnorm.weightGradOp({ ...inputNorm, dy: g.dxn, dw: grad(`${p}.input_layernorm.weight`) }));
}

/**
 * The output gradient of a block's last product: the residual stream's dx, or for Gemma its norm's input gradient
 * rmsnorm'(dx) into dOut (LoRA's d(x Aᵀ) of the product written beside it on GPUs), with the norm's dw in full mode.
 */
function blockOutputBackward(c: StepContext, ops: Op[], l: number, projection: 'o_proj' | 'down_proj'): GPUBuffer {
  const g = c.buffers.d;
  if (!g) throw new Error('a forward-only step has no backward');
  const norm = outputNorm(c, l, projection);
  if (!norm || !g.dOut) return g.dx;
  const shape = { rows: c.linear.rows, dim: c.w.config.hiddenSize };
  const lowRankOut = c.lora.residualOut(l, projection);
  ops.push(c.k.rmsnorm.backwardOp({ ...norm, ...shape, dy: g.dx, dx: g.dOut, lowRankOut }));
  if (c.grad) {
    const key = `model.layers.${l}.post_${projection === 'o_proj' ? 'attention' : 'feedforward'}_layernorm.weight`;
    ops.push(c.k.rmsnorm.weightGradOp({ ...norm, ...shape, dy: g.dx, dw: c.grad(key) }));
  }
  return g.dOut;
}

/**
 * dx [N, in] = Σ dy · W + each adapter's share over the projections reading x, each with its output's gradient
 * dy; LoRA's d(x Aᵀ) first, its weight gradients recorded for LoraPlan.flush.
 */
function projectionsBackward(
  c: StepContext,
  ops: Op[],
  l: number,
  grads: ReadonlyArray<[Projection, GPUBuffer]>,
  x: GPUBuffer,
  dx: GPUBuffer,
  partialReader: boolean,
): Slabs {
  const projections = grads.map(([projection, dy]) => ({ projection, dy }));
  c.lora.inputGrads(ops, l, projections);
  const withLora = projections.map((g) => ({ ...g, lowRank: c.lora.backward(l, g.projection, x, g.dy) }));
  return c.linear.backward(ops, l, withLora, x, dx, { partialReader, weightGrads: c.grad });
}

/** Rotary embeddings of layer l's queries and keys, rows layout in and out (Gemma's local layers: their tables). */
function rope(
  c: StepContext,
  l: number,
  rotation: Rotation,
  q: { x: GPUBuffer; y: GPUBuffer },
  k: { x: GPUBuffer; y: GPUBuffer },
): Op {
  const s = c.buffers.s;
  const local = c.w.config.gemma?.slidingLayers[l] && s.cosLocal && s.sinLocal;
  const [cos, sin] = local ? [s.cosLocal as GPUBuffer, s.sinLocal as GPUBuffer] : [s.cos, s.sin];
  return c.k.rope.op({ rotation, q, k, cos, sin }, attentionShape(c, l));
}

/** Layer l's attention: Gemma's score scale, and its window on local layers. */
function attentionShape(c: StepContext, l: number): AttentionShape {
  const config = c.w.config;
  const { numHeads: heads, numKvHeads: kvHeads, headDim } = config;
  return { batch: c.shape.batch, seq: c.shape.seq, heads, kvHeads, headDim, ...layerAttention(config, l) };
}
