import { type ModelConfig, shortDims } from '../../../core/model-config';
import { ropeTables } from './rope-tables';

/**
 * A training step's buffers, allocated once per [batch, seq] shape. N = batch · seq tokens, d hidden, f intermediate,
 * H / KV query / key-value heads, hd head dim, r LoRA rank, T seq.
 */

/** A step's batch: `batch` rows of `seq` tokens. */
export interface StepShape {
  batch: number;
  seq: number;
}

/** Which activations live per layer: all of them, only each layer's input (recompute), or none (forward only). */
export type Kept = 'all' | 'inputs' | 'none';

/** What a layer's backward reads of its forward. */
export interface LayerActivations {
  xIn: GPUBuffer; // [N, d] residual entering the layer
  xn1: GPUBuffer; // [N, d] input norm's output
  rstd1: GPUBuffer; // [N]
  qPre: GPUBuffer | null; // [N, H*hd] q before its per-head norm (qwen3)
  kPre: GPUBuffer | null; // [N, KV*hd]
  rstdQ: GPUBuffer | null; // [N*H]
  rstdK: GPUBuffer | null; // [N*KV]
  qr: GPUBuffer; // [N, H*hd] q after rotary embeddings
  kr: GPUBuffer; // [N, KV*hd] k after rotary embeddings
  v: GPUBuffer; // [N, KV*hd]
  attn: GPUBuffer; // [N, H*hd] attention output, input of o_proj
  lse: GPUBuffer; // [B, H, T] each query's log Σ exp of its attention scores
  xMid: GPUBuffer; // [N, d] residual after attention
  xn2: GPUBuffer; // [N, d] post-attention norm's output
  rstd2: GPUBuffer; // [N]
  gate: GPUBuffer; // [N, f]
  up: GPUBuffer; // [N, f]
  act: GPUBuffer; // [N, f] silu(gate) · up, input of down_proj
  loraXa: GPUBuffer | null; // [modules, N, r] x Aᵀ of each LoRA module (LoraPlan.slot); null without any
  // Gemma's normed block outputs (null for the others):
  attnOut: GPUBuffer | null; // [N, d] o_proj's output, before its norm
  rstdA: GPUBuffer | null; // [N]
  mlpOut: GPUBuffer | null; // [N, d] down_proj's output, before its norm
  rstdM: GPUBuffer | null; // [N]
}

/** Scratch every layer shares, and the step's ends. */
export interface StepScratch {
  xOut: GPUBuffer; // [N, d] residual leaving the last layer
  xf: GPUBuffer; // [N, d] final norm's output
  rstdF: GPUBuffer; // [N]
  q: GPUBuffer; // [N, H*hd] q before rotary embeddings
  k: GPUBuffer; // [N, KV*hd]
  qn: GPUBuffer; // [N, H*hd] q after its per-head norm (qwen3)
  kn: GPUBuffer; // [N, KV*hd]
  logits: GPUBuffer; // [N, largest vocabulary slice]
  ceStats: GPUBuffer; // [N, 3] cross-entropy's running max, sum and target logit
  lse: GPUBuffer; // [N] log Σ exp of the logits
  dxf: GPUBuffer; // [N, d] d(loss)/d(xf): a head's gradient in 'hidden' mode, even over a forward-only step
  cos: GPUBuffer; // [T, hd/2]
  sin: GPUBuffer; // [T, hd/2]
  cosLocal: GPUBuffer | null; // [T, hd/2] Gemma's local layers' (their own rotary base)
  sinLocal: GPUBuffer | null;
}

/** The backward's scratch, shared by the layers. */
export interface BackwardScratch {
  dx: GPUBuffer; // [N, d] d(loss)/d(residual)
  dxn: GPUBuffer; // [N, d] d(loss)/d(a norm's output)
  dq: GPUBuffer; // [N, H*hd]
  dk: GPUBuffer; // [N, KV*hd]
  dv: GPUBuffer; // [N, KV*hd]
  dqn: GPUBuffer; // [N, H*hd]
  dkn: GPUBuffer; // [N, KV*hd]
  dattn: GPUBuffer; // [N, H*hd]
  dqr: GPUBuffer; // [N, H*hd]
  dkr: GPUBuffer; // [N, KV*hd]
  delta: GPUBuffer; // [B, H, T] dout · out
  dgate: GPUBuffer; // [N, f]
  dup: GPUBuffer; // [N, f]
  dact: GPUBuffer; // [N, f]
  dxa: GPUBuffer; // [modules, N, r] d(x Aᵀ) by xa's slots, kept until the layer's LoRA gradients ran
  dOut: GPUBuffer | null; // [N, d] Gemma: d(loss)/d(a block's output before its norm)
}

/** The batch as the CPU writes it. */
export interface StepInputs {
  ids: GPUBuffer; // [N] u32
  targets: GPUBuffer; // [N] i32, -100 ignored
  weightsPerToken: GPUBuffer; // [N] each target's loss weight
  lossRows: GPUBuffer; // [N] weight · CE
  tokenIndex: GPUBuffer | null; // [3N + 2] the embedding backward's index (full mode)
  dropoutState: GPUBuffer | null; // [2] u32 [seed, on], when the adapter has dropout
}

export interface StepBuffers {
  inputs: StepInputs;
  layers: LayerActivations[];
  s: StepScratch;
  d: BackwardScratch | null;
}

/** How many buffers to allocate: for N tokens of T, the largest logits slice, the LoRA modules of each layer. */
export interface StepBufferSizes {
  config: ModelConfig;
  tokens: number;
  seq: number;
  kept: Kept;
  full: boolean;
  dropout: boolean;
  maxSlice: number;
  rank: number;
  modulesPerLayer: number[];
}

export function allocateStepBuffers(
  alloc: (bytes: number, label: string) => GPUBuffer,
  upload: (data: Float32Array<ArrayBuffer>, label: string) => GPUBuffer,
  sizes: StepBufferSizes,
): StepBuffers {
  const { config: c, tokens: N, kept, rank: r } = sizes;
  const { d, f, H, KV, hd } = shortDims(c);
  const f32 = (n: number, label: string) => alloc(n * 4, label);
  const inputs: StepInputs = {
    ids: f32(N, 'token ids'),
    targets: f32(N, 'targets'),
    weightsPerToken: f32(N, 'target weights'),
    lossRows: f32(N, 'loss per token'),
    tokenIndex: sizes.full ? f32(3 * N + 2, 'token index') : null,
    dropoutState: sizes.dropout ? alloc(8, 'dropout state') : null,
  };
  // A layer's own set; with recompute (or forward only) every layer after the first reuses the first's, all but
  // the input where recompute keeps it.
  const own = (l: number): LayerActivations => ({
    xIn: f32(N * d, `L${l} xIn`),
    xn1: f32(N * d, `L${l} xn1`),
    rstd1: f32(N, `L${l} rstd1`),
    qPre: c.qkNorm ? f32(N * H * hd, `L${l} qPre`) : null,
    kPre: c.qkNorm ? f32(N * KV * hd, `L${l} kPre`) : null,
    rstdQ: c.qkNorm ? f32(N * H, `L${l} rstdQ`) : null,
    rstdK: c.qkNorm ? f32(N * KV, `L${l} rstdK`) : null,
    qr: f32(N * H * hd, `L${l} q rotated`),
    kr: f32(N * KV * hd, `L${l} k rotated`),
    v: f32(N * KV * hd, `L${l} v`),
    attn: f32(N * H * hd, `L${l} attn`),
    lse: f32(N * H, `L${l} attention log-sum-exp`),
    xMid: f32(N * d, `L${l} xMid`),
    xn2: f32(N * d, `L${l} xn2`),
    rstd2: f32(N, `L${l} rstd2`),
    gate: f32(N * f, `L${l} gate`),
    up: f32(N * f, `L${l} up`),
    act: f32(N * f, `L${l} act`),
    loraXa: null,
    attnOut: c.gemma ? f32(N * d, `L${l} attention output`) : null,
    rstdA: c.gemma ? f32(N, `L${l} rstd attention output`) : null,
    mlpOut: c.gemma ? f32(N * d, `L${l} MLP output`) : null,
    rstdM: c.gemma ? f32(N, `L${l} rstd MLP output`) : null,
  });
  // x Aᵀ: each layer's own when every activation is kept, else one buffer for the layer with the most modules
  // (LoRA may skip layers: PEFT's layers_to_transform).
  const slots = Math.max(0, ...sizes.modulesPerLayer);
  const sharedXa = kept !== 'all' && slots > 0 ? f32(slots * N * r, 'xA') : null;
  const layers: LayerActivations[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const first = layers[0];
    const a: LayerActivations =
      l === 0 || kept === 'all' ? own(l) : { ...first, xIn: kept === 'inputs' ? f32(N * d, `L${l} xIn`) : first.xIn };
    const modules = sizes.modulesPerLayer[l];
    a.loraXa = modules === 0 ? null : (sharedXa ?? f32(modules * N * r, `L${l} xA`));
    layers.push(a);
  }
  const { cos, sin } = ropeTables(c, sizes.seq);
  const local = c.gemma ? ropeTables(c, sizes.seq, true) : null;
  const s: StepScratch = {
    xOut: f32(N * d, 'x out'),
    xf: f32(N * d, 'x final norm'),
    rstdF: f32(N, 'rstd final'),
    q: f32(N * H * hd, 'q rows'),
    k: f32(N * KV * hd, 'k rows'),
    qn: f32(N * H * hd, 'q normed'),
    kn: f32(N * KV * hd, 'k normed'),
    logits: f32(Math.max(1, N * sizes.maxSlice), 'logits chunk'),
    ceStats: f32(N * 3, 'cross-entropy stats'),
    lse: f32(N, 'log-sum-exp'),
    dxf: f32(N * d, 'd final norm out'),
    cos: upload(cos, 'rope cos'),
    sin: upload(sin, 'rope sin'),
    cosLocal: local && upload(local.cos, 'local rope cos'),
    sinLocal: local && upload(local.sin, 'local rope sin'),
  };
  if (kept === 'none') return { inputs, layers, s, d: null };
  const grads: BackwardScratch = {
    dx: f32(N * d, 'd residual'),
    dxn: f32(N * d, 'd normed'),
    dq: f32(N * H * hd, 'd q rows'),
    dk: f32(N * KV * hd, 'd k rows'),
    dv: f32(N * KV * hd, 'd v rows'),
    dqn: f32(N * H * hd, 'd q normed'),
    dkn: f32(N * KV * hd, 'd k normed'),
    dattn: f32(N * H * hd, 'd attention output'),
    dqr: f32(N * H * hd, 'd q rotated'),
    dkr: f32(N * KV * hd, 'd k rotated'),
    delta: f32(N * H, 'attention d out · out'),
    dgate: f32(N * f, 'd gate'),
    dup: f32(N * f, 'd up'),
    dact: f32(N * f, 'd act'),
    dxa: f32(Math.max(1, slots * N * r), 'd xA'),
    dOut: c.gemma ? f32(N * d, 'd block output') : null,
  };
  return { inputs, layers, s, d: grads };
}
