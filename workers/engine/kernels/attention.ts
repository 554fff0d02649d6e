import { Kernel, type UniformValue } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { Tiling, tiledForwardShader, tiledKeyValueGradShader, tiledQueryGradShader } from './attention-tiles';
import {
  common,
  FORWARD_BINDINGS,
  KEY_VALUE_GRAD_BINDINGS,
  PARAMS,
  QUERY_GRAD_BINDINGS,
  Unrolled,
  vectorOf,
  WG,
} from './attention-wgsl';

/**
 * Causal self-attention for training, without the [seq, seq] probabilities (FlashAttention's online softmax):
 *   q, out, dout, dq [batch·seq, heads·headDim];  k, v, dk, dv [batch·seq, kvHeads·headDim]
 *   lse, delta [batch, heads, seq]
 *   s_ij = scale · q_i · k_j over keys j ≤ i (and i − j < window: Gemma's local layers), query head h reading kv
 *   head g = h / (heads / kvHeads); scale head_dim^-½ unless the shape says
 *   forward   out_i = Σ_j p_ij v_j,  p_ij = exp(s_ij - lse_i),  lse_i = log Σ_j exp(s_ij)
 *   backward  delta_i = dout_i · out_i;  ds_ij = p_ij (dout_i · v_j - delta_i);  dq_i = scale Σ_j ds_ij k_j
 *             dk_j = scale Σ_{h ∈ g, i ≥ j} ds_ij q_i,  dv_j = Σ_{h ∈ g, i ≥ j} p_ij dout_i  (a key row per invocation
 *             over its group's query heads, so nothing is accumulated across invocations)
 * `AttentionLayout`: rows (CPU adapters: an invocation walks `block` rows alone, no barriers) or tiles (GPUs, where a
 * row per invocation leaves the chip idle: attention-tiles.ts); rows read as vectors, headDim compiled in.
 */

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Multiplies q · k; head_dim^-½ when left out. */
  scale?: number;
  /** Sliding-window attention: query i sees keys j with i − j < window; every earlier key when left out. */
  window?: number;
}

/** Rows per invocation (`block`, see `KernelChoices`), or rows per workgroup tile (`tile`: 8 or 16). */
export type AttentionLayout = { kind: 'rows'; block: number } | { kind: 'tiles'; tile: number };

function forwardShader(u: Unrolled): string {
  return /* wgsl */ `
${common(u)}
${FORWARD_BINDINGS}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.x * ${u.block}u;
  let bh = gid.y; // b * heads + h
  if (i0 >= p.seq) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  let g = h / (p.heads / p.kvHeads);
  // Per row r of the block: its query (scaled), running maximum m, sum t and weighted sum of values a.
${u.perRow((r) => `  let q${r}at = rowAt(b, min(i0 + ${r}u, p.seq - 1u), p.heads, h);\n  var m${r} = -3.0e38;\n  var t${r} = 0.0;\n  var e${r} = 0.0;`)}
${u.perRowVector((r, x) => `  let q${r}_${x} = q[q${r}at + ${x}u] * p.scale;\n  var a${r}_${x} = V(0.0);`)}
  let end = min(i0 + ${u.block}u, p.seq);
  for (var j = firstKey(i0); j < end; j++) {
    let kj = rowAt(b, j, p.kvHeads, g);
${u.perVector((x) => `    let k${x} = k[kj + ${x}u];`)}
${u.perRow(
  (r) => `    let s${r} = ${u.dot(
    (x) => `q${r}_${x}`,
    (x) => `k${x}`,
  )};
    // The sums so far rescale by exp(old max - new max), 1 while the maximum stands: branch-free, which a
    // software adapter's lanes run faster than a rescale taken by some of them.
    let visible${r} = sees(i0 + ${r}u, j); // the causal mask, and the window's
    let mNew${r} = select(m${r}, max(m${r}, s${r}), visible${r});
    let c${r} = exp(m${r} - mNew${r});
    m${r} = mNew${r};
    e${r} = select(0.0, exp(s${r} - m${r}), visible${r});
    t${r} = t${r} * c${r} + e${r};`,
)}
${u.perVector((x) => `    let v${x} = v[kj + ${x}u];\n${u.perRow((r) => `    a${r}_${x} = a${r}_${x} * c${r} + e${r} * v${x};`)}`)}
  }
${u.perRow(
  (r) => `  if (i0 + ${r}u < end) {
${u.perVector((x) => `    out[q${r}at + ${x}u] = a${r}_${x} / t${r};`)}
    lse[bh * p.seq + i0 + ${r}u] = m${r} + log(t${r});
  }`,
)}
}
`;
}

function queryGradShader(u: Unrolled): string {
  return /* wgsl */ `
${common(u)}
${QUERY_GRAD_BINDINGS}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.x * ${u.block}u;
  let bh = gid.y;
  if (i0 >= p.seq) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  let g = h / (p.heads / p.kvHeads);
  // Per row r of the block: its query (scaled), dout, delta = dout · out, lse and dq's sum a.
${u.perRow((r) => `  let row${r} = min(i0 + ${r}u, p.seq - 1u);\n  let q${r}at = rowAt(b, row${r}, p.heads, h);\n  let l${r} = lse[bh * p.seq + row${r}];`)}
${u.perRowVector((r, x) => `  let q${r}_${x} = q[q${r}at + ${x}u] * p.scale;\n  let o${r}_${x} = dout[q${r}at + ${x}u];\n  var a${r}_${x} = V(0.0);`)}
${u.perRow(
  (r) =>
    `  let d${r} = ${u.dot(
      (x) => `o${r}_${x}`,
      (x) => `out[q${r}at + ${x}u]`,
    )};`,
)}
  let end = min(i0 + ${u.block}u, p.seq);
  for (var j = firstKey(i0); j < end; j++) {
    let kj = rowAt(b, j, p.kvHeads, g);
${u.perVector((x) => `    let k${x} = k[kj + ${x}u];\n    let v${x} = v[kj + ${x}u];`)}
${u.perRow(
  (r) => `    let s${r} = ${u.dot(
    (x) => `q${r}_${x}`,
    (x) => `k${x}`,
  )};
    let dp${r} = ${u.dot(
      (x) => `o${r}_${x}`,
      (x) => `v${x}`,
    )};
    let ds${r} = select(0.0, exp(s${r} - l${r}) * (dp${r} - d${r}), sees(i0 + ${r}u, j));`,
)}
${u.perRowVector((r, x) => `    a${r}_${x} += ds${r} * k${x};`)}
  }
${u.perRow(
  (r) => `  if (i0 + ${r}u < end) {
${u.perVector((x) => `    dq[q${r}at + ${x}u] = a${r}_${x} * p.scale;`)}
    delta[bh * p.seq + i0 + ${r}u] = d${r};
  }`,
)}
}
`;
}

function keyValueGradShader(u: Unrolled): string {
  return /* wgsl */ `
${common(u)}
${KEY_VALUE_GRAD_BINDINGS}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j0 = gid.x * ${u.block}u;
  let bg = gid.y; // b * kvHeads + g
  if (j0 >= p.seq) { return; }
  let b = bg / p.kvHeads;
  let g = bg % p.kvHeads;
  let group = p.heads / p.kvHeads;
  // Per key row r of the block: its key (scaled) and value, and the sums dk (ak) and dv (av).
${u.perRow((r) => `  let k${r}at = rowAt(b, min(j0 + ${r}u, p.seq - 1u), p.kvHeads, g);`)}
${u.perRowVector((r, x) => `  let k${r}_${x} = k[k${r}at + ${x}u] * p.scale;\n  let v${r}_${x} = v[k${r}at + ${x}u];\n  var ak${r}_${x} = V(0.0);\n  var av${r}_${x} = V(0.0);`)}
  // The last query that sees the block's last key.
  let last = min(p.seq, j0 + ${u.block - 1}u + p.window);
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let stats = (b * p.heads + h) * p.seq;
    for (var i = j0; i < last; i++) {
      let qi = rowAt(b, i, p.heads, h);
${u.perVector((x) => `      let q${x} = q[qi + ${x}u];\n      let o${x} = dout[qi + ${x}u];`)}
      let li = lse[stats + i];
      let di = delta[stats + i];
${u.perRow(
  (r) => `      let s${r} = ${u.dot(
    (x) => `k${r}_${x}`,
    (x) => `q${x}`,
  )};
      let dp${r} = ${u.dot(
        (x) => `v${r}_${x}`,
        (x) => `o${x}`,
      )};
      let p${r} = select(0.0, exp(s${r} - li), sees(i, j0 + ${r}u));
      let ds${r} = p${r} * (dp${r} - di);`,
)}
${u.perRowVector((r, x) => `      av${r}_${x} += p${r} * o${x};\n      ak${r}_${x} += ds${r} * q${x};`)}
    }
  }
${u.perRow(
  (r) => `  if (j0 + ${r}u < p.seq) {
${u.perVector((x) => `    dk[k${r}at + ${x}u] = ak${r}_${x} * p.scale;\n    dv[k${r}at + ${x}u] = av${r}_${x};`)}
  }`,
)}
}
`;
}

/**
 * Most vectors of one row set an invocation holds unrolled (rows per invocation × vectors per row): compiling
 * grows faster than the code, and SwiftShader took 4.9 s for head size 64 at 4 rows, 24 s for 128 at 4 rows,
 * against 1.9 s and 2.6 s within this budget. Rows per invocation come down to fit it.
 */
const UNROLLED_VECTORS = 32;

interface HeadDimKernels {
  /** Positions of the sequence each workgroup covers. */
  rowsPerGroup: number;
  forward: Kernel;
  queryGrad: Kernel;
  keyValueGrad: Kernel;
}

export class AttentionKernels {
  /** Compiled per head dimension, which sizes each invocation's registers. */
  private readonly byHeadDim = new Map<number, HeadDimKernels>();

  /** `layout`: KernelChoices.attention. */
  constructor(
    private readonly device: GPUDevice,
    private readonly layout: AttentionLayout,
  ) {}

  /** out, lse ← attention(q, k, v). */
  forwardOp({ q, k, v, out, lse }: Record<'q' | 'k' | 'v' | 'out' | 'lse', GPUBuffer>, s: AttentionShape): Op {
    const kernels = this.kernels(s.headDim);
    const grid: [number, number, number] = [Math.ceil(s.seq / kernels.rowsPerGroup), s.batch * s.heads, 1];
    return kernels.forward.op([q, k, v, out, lse], uniforms(s), grid);
  }

  /**
   * dq, dk, dv ← the gradients of attention given dout, the forward's out and lse; delta is scratch
   * [batch, heads, seq]. Two dispatches: the query rows' (which write delta), then the key rows'.
   */
  backwardOps(
    { q, k, v, out, dout, lse }: Record<'q' | 'k' | 'v' | 'out' | 'dout' | 'lse', GPUBuffer>,
    { delta, dq, dk, dv }: Record<'delta' | 'dq' | 'dk' | 'dv', GPUBuffer>,
    s: AttentionShape,
  ): Op[] {
    const kernels = this.kernels(s.headDim);
    const groups = Math.ceil(s.seq / kernels.rowsPerGroup);
    return [
      kernels.queryGrad.op([q, k, v, out, dout, lse, dq, delta], uniforms(s), [groups, s.batch * s.heads, 1]),
      kernels.keyValueGrad.op([q, k, v, dout, lse, delta, dk, dv], uniforms(s), [groups, s.batch * s.kvHeads, 1]),
    ];
  }

  private kernels(headDim: number): HeadDimKernels {
    let kernels = this.byHeadDim.get(headDim);
    if (!kernels) {
      kernels =
        this.layout.kind === 'tiles' ? this.tiled(headDim, this.layout.tile) : this.rows(headDim, this.layout.block);
      this.byHeadDim.set(headDim, kernels);
    }
    return kernels;
  }

  private rows(headDim: number, asked: number): HeadDimKernels {
    const vectors = headDim / vectorOf(headDim).width;
    const block = Math.max(1, Math.min(asked, Math.floor(UNROLLED_VECTORS / vectors)));
    const u = new Unrolled(headDim, block);
    return {
      rowsPerGroup: WG * block,
      forward: new Kernel(this.device, forwardShader(u), 'attention_forward'),
      queryGrad: new Kernel(this.device, queryGradShader(u), 'attention_backward_queries'),
      keyValueGrad: new Kernel(this.device, keyValueGradShader(u), 'attention_backward_keys_values'),
    };
  }

  private tiled(headDim: number, tile: number): HeadDimKernels {
    const t = new Tiling(new Unrolled(headDim, 1), tile);
    return {
      rowsPerGroup: tile,
      forward: new Kernel(this.device, tiledForwardShader(t), 'attention_forward_tiled'),
      queryGrad: new Kernel(this.device, tiledQueryGradShader(t), 'attention_backward_queries_tiled'),
      keyValueGrad: new Kernel(this.device, tiledKeyValueGradShader(t), 'attention_backward_keys_values_tiled'),
    };
  }
}

function uniforms(s: AttentionShape): UniformValue[] {
  return PARAMS.pack({
    batch: s.batch,
    seq: s.seq,
    heads: s.heads,
    kvHeads: s.kvHeads,
    scale: s.scale ?? 1 / Math.sqrt(s.headDim),
    window: s.window ?? s.seq,
  });
}
