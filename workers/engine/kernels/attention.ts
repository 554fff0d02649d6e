import { f32, Kernel, type UniformValue, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * Causal self-attention for training, forward and backward, without the [seq, seq] probability matrix: each query
 * row keeps a running maximum and sum of its softmax (the online softmax of FlashAttention), and the backward
 * recomputes each probability from the row's log-sum-exp.
 *   q, out, dout, dq: [batch * seq, heads * headDim]    (rows layout, as the projections produce and consume)
 *   k, v, dk, dv:     [batch * seq, kvHeads * headDim]
 *   lse, delta:       [batch, heads, seq]
 * Query head h reads key-value head g = h / G, G = heads / kvHeads; s_ij = scale q_i · k_j over keys j <= i.
 * Forward:  out_i = Σ_j p_ij v_j with p_ij = exp(s_ij - lse_i), lse_i = log Σ_j exp(s_ij).
 * Backward: delta_i = dout_i · out_i;  ds_ij = p_ij (dout_i · v_j - delta_i);
 *           dq_i = scale Σ_j ds_ij k_j  (one invocation per query row, which also writes delta_i),
 *           dk_j = scale Σ_{h in g, i >= j} ds_ij q_i,  dv_j = Σ_{h in g, i >= j} p_ij dout_i  (one invocation per
 *           key row, summing over its group's query heads, so nothing is accumulated across invocations).
 * Two layouts (`AttentionLayout`), the kernels' arithmetic the same in both:
 * - rows (CPU adapters): an invocation walks `block` consecutive rows alone, so each key or query it reads serves
 *   them all, with no barriers; a workgroup holds 64 invocations' rows of one head.
 * - tiles (GPUs, where one invocation per row leaves most of the chip idle and each walks the whole sequence):
 *   a workgroup takes a tile of `tile` rows of one head and walks the other side a tile at a time. Its 64
 *   invocations first compute the tile pair's scores (each a few (row, column) dot products), share them through
 *   workgroup memory, then each of a row's 64 / tile lanes sums its own slice of the row's vectors.
 * Rows are read as vec4 when headDim allows it, and headDim is compiled into the kernels.
 */

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

const WG = 64;

/** Rows per invocation (`block`, see `KernelChoices`), or rows per workgroup tile (`tile`: 8 or 16). */
export type AttentionLayout = { kind: 'rows'; block: number } | { kind: 'tiles'; tile: number };

/** The vector type rows are read as, its width, and a dot product of two of them. */
export function vectorOf(headDim: number) {
  return headDim % 4 === 0
    ? { width: 4, type: 'vec4f', dot: 'fn vdot(a: vec4f, b: vec4f) -> f32 { return dot(a, b); }' }
    : { width: 1, type: 'f32', dot: 'fn vdot(a: f32, b: f32) -> f32 { return a * b; }' };
}

/**
 * The kernels are written out in full, with no loops over a row's vectors or a block's rows: every private value
 * then has a constant name, which compilers keep in registers, where arrays indexed in loops go through memory
 * (on software adapters, as one access per invocation). `Unrolled` writes those statements.
 */
export class Unrolled {
  /** The row's vectors, 0..HDV-1, and the block's rows, 0..block-1. */
  readonly xs: number[];
  readonly rs: number[];

  constructor(
    readonly headDim: number,
    readonly block: number,
    /** Elements per vector: vectorOf(headDim)'s unless given (a kernel pairing half rows needs it to divide those). */
    width = vectorOf(headDim).width,
  ) {
    this.xs = Array.from({ length: headDim / width }, (_, x) => x);
    this.rs = Array.from({ length: block }, (_, r) => r);
  }

  /** One statement per vector of a row. */
  perVector(statement: (x: number) => string): string {
    return this.xs.map(statement).join('\n');
  }

  /** One statement per row of the block. */
  perRow(statement: (r: number) => string): string {
    return this.rs.map(statement).join('\n');
  }

  /** One statement per (row, vector). */
  perRowVector(statement: (r: number, x: number) => string): string {
    return this.rs.map((r) => this.perVector((x) => statement(r, x))).join('\n');
  }

  /** Σ over the row's vectors of vdot(left(x), right(x)). */
  dot(left: (x: number) => string, right: (x: number) => string): string {
    return this.xs.map((x) => `vdot(${left(x)}, ${right(x)})`).join(' + ');
  }
}

/** What all three kernels share: parameters, the row's vector type and the index of each row's first vector. */
function common(u: Unrolled): string {
  const v = vectorOf(u.headDim);
  return /* wgsl */ `
struct Params { batch: u32, seq: u32, heads: u32, kvHeads: u32, scale: f32, _p0: u32, _p1: u32, _p2: u32 }
alias V = ${v.type};
const HDV = ${u.xs.length}u; // vectors per head row
${v.dot}
// First vector of head h's row at position t of batch row b, in a rows-layout tensor of \`heads\` heads.
fn rowAt(b: u32, t: u32, heads: u32, h: u32) -> u32 { return ((b * p.seq + t) * heads + h) * HDV; }
`;
}

/**
 * A pass's bindings, the same in both layouts, numbered in the order the ops bind their buffers: q, k and v, the
 * other buffers it reads, those it writes, then the uniforms.
 */
function bindings(reads: string[], writes: string[]): string {
  const storage = [
    ...['q: array<V>', 'k: array<V>', 'v: array<V>', ...reads].map((b) => `var<storage, read> ${b}`),
    ...writes.map((b) => `var<storage, read_write> ${b}`),
  ];
  return [...storage, 'var<uniform> p: Params'].map((decl, i) => `@group(0) @binding(${i}) ${decl};`).join('\n');
}
const FORWARD_BINDINGS = bindings([], ['out: array<V>', 'lse: array<f32>']);
const QUERY_GRAD_BINDINGS = bindings(
  ['out: array<V>', 'dout: array<V>', 'lse: array<f32>'],
  ['dq: array<V>', 'delta: array<f32>'],
);
const KEY_VALUE_GRAD_BINDINGS = bindings(
  ['dout: array<V>', 'lse: array<f32>', 'delta: array<f32>'],
  ['dk: array<V>', 'dv: array<V>'],
);

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
  for (var j = 0u; j < end; j++) {
    let kj = rowAt(b, j, p.kvHeads, g);
${u.perVector((x) => `    let k${x} = k[kj + ${x}u];`)}
${u.perRow(
  (r) => `    let s${r} = ${u.dot(
    (x) => `q${r}_${x}`,
    (x) => `k${x}`,
  )};
    // The sums so far rescale by exp(old max - new max), 1 while the maximum stands: branch-free, which a
    // software adapter's lanes run faster than a rescale taken by some of them.
    let visible${r} = j <= i0 + ${r}u; // the causal mask
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
  for (var j = 0u; j < end; j++) {
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
    let ds${r} = select(exp(s${r} - l${r}) * (dp${r} - d${r}), 0.0, j > i0 + ${r}u);`,
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
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let stats = (b * p.heads + h) * p.seq;
    for (var i = j0; i < p.seq; i++) {
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
      let p${r} = select(exp(s${r} - li), 0.0, j0 + ${r}u > i);
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
 * What the tiled kernels share. A workgroup's invocation `lid` works for the tile's row `lid / L` as lane
 * `lid % L`: it computes the scores of columns `lane + L e` (e < E) of that row, and owns the row's vectors
 * `lane + L m` (m < M) when summing.
 */
class Tiling {
  readonly lanes: number;
  /** Scores per invocation per tile pair. */
  readonly entries: number[];
  /** The row's vectors each lane owns. */
  readonly slices: number[];

  constructor(
    readonly u: Unrolled,
    readonly tile: number,
  ) {
    if (![8, 16].includes(tile)) throw new Error(`attention tiles are 8 or 16 rows, not ${tile}`);
    this.lanes = WG / tile;
    this.entries = Array.from({ length: tile / this.lanes }, (_, e) => e);
    this.slices = Array.from({ length: Math.ceil(u.xs.length / this.lanes) }, (_, m) => m);
  }

  /** The tile's constants, and the workgroup arrays of tile × tile floats named in `shared`. */
  prelude(shared: string[]): string {
    return `${shared.map((name) => `var<workgroup> ${name}: array<f32, ${this.tile * this.tile}>;`).join('\n')}
const R = ${this.tile}u; // rows of a tile
const L = ${this.lanes}u; // lanes per row`;
  }

  /** One statement per score the invocation computes (`c`: the column's WGSL expression). */
  perEntry(statement: (e: number, c: string) => string): string {
    return this.entries.map((e) => statement(e, `(lane + ${this.lanes * e}u)`)).join('\n');
  }

  /**
   * One statement per vector the lane owns, guarded where the lanes do not divide the row (declarations, which
   * a guard's block would hide, unguarded: a lane without its last vector sums and stores nothing there).
   */
  perSlice(statement: (m: number, x: string) => string, guarded = true): string {
    const even = this.u.xs.length % this.lanes === 0;
    return this.slices
      .map((m) => {
        const x = `lane + ${this.lanes * m}u`;
        return even || !guarded ? statement(m, x) : `if (${x} < HDV) {\n${statement(m, x)}\n}`;
      })
      .join('\n');
  }

  /** One statement per column c of the tile, 0..tile-1. */
  perColumn(statement: (c: number) => string): string {
    return Array.from({ length: this.tile }, (_, c) => statement(c)).join('\n');
  }

  /** Σ over the tile's columns c of term(c), as one expression. */
  sumColumns(term: (c: number) => string): string {
    return Array.from({ length: this.tile }, (_, c) => term(c)).join(' + ');
  }

  /**
   * The entry point of a kernel whose tile rows are one head's queries (the forward, the query gradient): the
   * tile, the head, and the invocation's query row i (at qi) and lane.
   */
  queryRowEntry(): string {
    return /* wgsl */ `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let qt = wid.x; // the query tile
  let bh = wid.y; // b * heads + h
  let b = bh / p.heads;
  let h = bh % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let r = lid / L;
  let lane = lid % L;
  // Rows past the end compute on the last row's data (so every lane reaches the barriers) and write nothing.
  let i = min(qt * R + r, p.seq - 1u);
  let qi = rowAt(b, i, p.heads, h);`;
  }

  /** Σ over the row's vectors of vdot(a[aAt + x], b[bAt + x]). */
  dot(a: string, aAt: string, b: string, bAt: string): string {
    return this.u.dot(
      (x) => `${a}[${aAt} + ${x}u]`,
      (x) => `${b}[${bAt} + ${x}u]`,
    );
  }
}

function tiledForwardShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['S'])}
${FORWARD_BINDINGS}

${t.queryRowEntry()}
  var m = -3.0e38;
  var t = 0.0;
${t.perSlice((m) => `  var a${m} = V(0.0);`, false)}
  for (var kt = 0u; kt <= qt; kt++) {
    let jStart = kt * R;
${t.perEntry(
  (e, c) => `    let j${e} = jStart + ${c};
    let k${e} = rowAt(b, min(j${e}, p.seq - 1u), p.kvHeads, g);
    S[r * R + ${c}] = select(-3.0e38, (${t.dot('q', 'qi', 'k', `k${e}`)}) * p.scale, j${e} <= i);`,
)}
    workgroupBarrier();
    // The row's running maximum over this tile, the rescale of the sums so far, and the tile's probabilities.
    var mNew = m;
${t.perColumn((c) => `    let s${c} = S[r * R + ${c}u];\n    mNew = max(mNew, s${c});`)}
    let corr = exp(m - mNew);
    m = mNew;
${t.perColumn((c) => `    let e${c} = exp(s${c} - m);\n    let v${c} = rowAt(b, min(jStart + ${c}u, p.seq - 1u), p.kvHeads, g);`)}
    t = t * corr + ${t.sumColumns((c) => `e${c}`)};
${t.perSlice((m, x) => `    a${m} = a${m} * corr + ${t.sumColumns((c) => `e${c} * v[v${c} + ${x}]`)};`)}
    workgroupBarrier();
  }
  if (qt * R + r < p.seq) {
${t.perSlice((m, x) => `    out[qi + ${x}] = a${m} / t;`)}
    if (lane == 0u) { lse[bh * p.seq + i] = m + log(t); }
  }
}
`;
}

function tiledQueryGradShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['DS'])}
${QUERY_GRAD_BINDINGS}

${t.queryRowEntry()}
  let li = lse[bh * p.seq + i];
  // delta_i = dout_i · out_i, which each lane of the row computes whole.
  let di = ${t.dot('dout', 'qi', 'out', 'qi')};
${t.perSlice((m) => `  var a${m} = V(0.0);`, false)}
  for (var kt = 0u; kt <= qt; kt++) {
    let jStart = kt * R;
${t.perEntry(
  (e, c) => `    let j${e} = jStart + ${c};
    let k${e} = rowAt(b, min(j${e}, p.seq - 1u), p.kvHeads, g);
    let s${e} = (${t.dot('q', 'qi', 'k', `k${e}`)}) * p.scale;
    let dp${e} = ${t.dot('dout', 'qi', 'v', `k${e}`)};
    DS[r * R + ${c}] = select(0.0, exp(s${e} - li) * (dp${e} - di), j${e} <= i);`,
)}
    workgroupBarrier();
${t.perColumn((c) => `    let ds${c} = DS[r * R + ${c}u];\n    let k${c}at = rowAt(b, min(jStart + ${c}u, p.seq - 1u), p.kvHeads, g);`)}
${t.perSlice((m, x) => `    a${m} += ${t.sumColumns((c) => `ds${c} * k[k${c}at + ${x}]`)};`)}
    workgroupBarrier();
  }
  if (qt * R + r < p.seq) {
${t.perSlice((m, x) => `    dq[qi + ${x}] = a${m} * p.scale;`)}
    if (lane == 0u) { delta[bh * p.seq + i] = di; }
  }
}
`;
}

function tiledKeyValueGradShader(t: Tiling): string {
  return /* wgsl */ `
${common(t.u)}
${t.prelude(['P', 'DS'])}
${KEY_VALUE_GRAD_BINDINGS}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let kt = wid.x; // the key tile
  let bg = wid.y; // b * kvHeads + g
  let b = bg / p.kvHeads;
  let g = bg % p.kvHeads;
  let group = p.heads / p.kvHeads;
  let tiles = (p.seq + R - 1u) / R;
  // Here the tile's rows are keys, and the columns the queries of one head's query tile.
  let c = lid / L;
  let lane = lid % L;
  let j = min(kt * R + c, p.seq - 1u);
  let kj = rowAt(b, j, p.kvHeads, g);
${t.perSlice((m) => `  var ak${m} = V(0.0);\n  var av${m} = V(0.0);`, false)}
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let stats = (b * p.heads + h) * p.seq;
    for (var qt = kt; qt < tiles; qt++) {
      let iStart = qt * R;
${t.perEntry(
  (e, col) => `      let i${e} = iStart + ${col};
      let iC${e} = min(i${e}, p.seq - 1u);
      let q${e} = rowAt(b, iC${e}, p.heads, h);
      let s${e} = (${t.dot('k', 'kj', 'q', `q${e}`)}) * p.scale;
      let dp${e} = ${t.dot('v', 'kj', 'dout', `q${e}`)};
      let p${e} = select(0.0, exp(s${e} - lse[stats + iC${e}]), j <= i${e} && i${e} < p.seq);
      P[c * R + ${col}] = p${e};
      DS[c * R + ${col}] = p${e} * (dp${e} - delta[stats + iC${e}]);`,
)}
      workgroupBarrier();
${t.perColumn((col) => `      let p${col}c = P[c * R + ${col}u];\n      let ds${col} = DS[c * R + ${col}u];\n      let q${col}at = rowAt(b, min(iStart + ${col}u, p.seq - 1u), p.heads, h);`)}
${t.perSlice(
  (m, x) => `      av${m} += ${t.sumColumns((col) => `p${col}c * dout[q${col}at + ${x}]`)};
      ak${m} += ${t.sumColumns((col) => `ds${col} * q[q${col}at + ${x}]`)};`,
)}
      workgroupBarrier();
    }
  }
  if (kt * R + c < p.seq) {
${t.perSlice((m, x) => `    dk[kj + ${x}] = ak${m} * p.scale;\n    dv[kj + ${x}] = av${m};`)}
  }
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
  forwardOp(q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, out: GPUBuffer, lse: GPUBuffer, s: AttentionShape): Op {
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
  return [
    u32(s.batch),
    u32(s.seq),
    u32(s.heads),
    u32(s.kvHeads),
    f32(1 / Math.sqrt(s.headDim)),
    u32(0),
    u32(0),
    u32(0),
  ];
}
