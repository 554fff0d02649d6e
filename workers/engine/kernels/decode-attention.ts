import { f32, grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { Unrolled, vectorOf } from './attention';
import { ROTATE_HALF_WGSL } from './rope';
import { type RowLayout, workgroupReduce } from './wgsl';

/**
 * Attention for decoding one token at a time in each of `rows` sequences over their key-value caches, every row at
 * the same position (the sequences advance together; see model/decoder.ts).
 *   position: [1] u32, the new tokens' position p (0-based), written by the CPU before each token
 *   q: [rows, H * hd], k, v: [rows, KV * hd], the new tokens' projections (q and k before rotary embeddings)
 *   cos, sin: [hd / 2], the rotary angles of position p
 *   kCache, vCache: [rows, maxLen, KV * hd], position-major within a row, so appending is one contiguous row
 *   qRot: [rows, H * hd] q after rotary embeddings; out: [rows, H * hd]
 *   scores: [rows * H, maxLen] scratch
 * `rotateAppend` rotates q into qRot and k into row p of the key cache, and copies v into row p of the value cache,
 * in one dispatch; `attend` computes, per row and query head h with key-value head g = h / (H / KV),
 *   out_h = Σ_{j ≤ p} softmax_j(scale · qRot_h · k_{j,g}) v_{j,g}
 * Positions past p are never read, so the causal mask is the loop bound. Rotation as in rope.ts.
 * `attend` comes in the two `RowLayout`s: a workgroup per head sharing its positions (GPUs), or an invocation per
 * head walking them alone with an online softmax, its vectors unrolled into registers as in attention.ts (CPU
 * adapters, where the workgroup's barriers cost more than the work).
 */
const WG = 64;

const rotateAppendShader = /* wgsl */ `
struct Params { heads: u32, kvHeads: u32, headDim: u32, rows: u32, maxLen: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> position: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> cosTable: array<f32>;
@group(0) @binding(5) var<storage, read> sinTable: array<f32>;
@group(0) @binding(6) var<storage, read_write> qRot: array<f32>;
@group(0) @binding(7) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(8) var<storage, read_write> vCache: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

${ROTATE_HALF_WGSL}

// The tables hold position p's angles only: element n's pair's entry.
fn tableAt(n: u32) -> u32 { return n % p.headDim % (p.headDim / 2u); }

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let qWidth = p.heads * p.headDim;
  let width = p.kvHeads * p.headDim;
  let r = gid.x / (qWidth + 2u * width);
  if (r >= p.rows) { return; }
  let n = gid.x % (qWidth + 2u * width);
  // This sequence's query, key and value, and its cache row for the position.
  let qi = r * qWidth;
  let ki = r * width;
  let row = (r * p.maxLen + position[0]) * width;
  if (n < qWidth) {
    qRot[qi + n] = rotated(q[qi + n], q[qi + partner(n)], n, tableAt(n), 1.0);
  } else if (n < qWidth + width) {
    let j = n - qWidth;
    kCache[row + j] = rotated(k[ki + j], k[ki + partner(j)], j, tableAt(j), 1.0);
  } else {
    let j = n - qWidth - width;
    vCache[row + j] = v[ki + j];
  }
}
`;

/**
 * The cooperative attend: a workgroup per head and row. Its invocations score positions in turn (each a dot product
 * of q with a key, read a vector at a time and unrolled, so its loads are all in flight at once), then split the
 * weighted sum of values two ways, over the head's vectors and over interleaved groups of positions, so each walks
 * a share of the cache instead of all of it; the groups' sums meet in workgroup memory.
 */
function cooperativeAttendShader(headDim: number): string {
  const u = new Unrolled(headDim, 1);
  const v = vectorOf(headDim);
  const vectors = u.xs.length;
  // Groups of positions the values are summed in: as many as the workgroup holds whole rows of vectors.
  const groups = Math.max(1, Math.floor(WG / vectors));
  return /* wgsl */ `
struct Params { heads: u32, kvHeads: u32, headDim: u32, maxLen: u32, scale: f32, rows: u32, _p1: u32, _p2: u32 }
alias V = ${v.type};
${v.dot}
const HDV = ${vectors}u; // vectors per head row
const GROUPS = ${groups}u;
@group(0) @binding(0) var<storage, read> position: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<V>;
@group(0) @binding(2) var<storage, read> kCache: array<V>;
@group(0) @binding(3) var<storage, read> vCache: array<V>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<V>;
@group(0) @binding(6) var<uniform> p: Params;
${workgroupReduce(WG)}
${vectors <= WG ? `var<workgroup> sums: array<V, ${WG}>;` : ''}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  // Workgroup wg.x is head h of sequence r.
  let h = wg.x % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let length = position[0] + 1u;
  let width = p.kvHeads * HDV; // vectors per cache row
  let cBase = (wg.x / p.heads) * p.maxLen * width + g * HDV;
  let qi = wg.x * HDV;
  let sBase = wg.x * p.maxLen;
${u.perVector((x) => `  let q${x} = q[qi + ${x}u] * p.scale;`)}
  var m = -3.0e38;
  for (var j = li; j < length; j += ${WG}u) {
    let kj = cBase + j * width;
    let s = ${u.dot(
      (x) => `q${x}`,
      (x) => `kCache[kj + ${x}u]`,
    )};
    scores[sBase + j] = s;
    m = max(m, s);
  }
  m = reduce(m, li, true);
  var total = 0.0;
  for (var j = li; j < length; j += ${WG}u) {
    let e = exp(scores[sBase + j] - m);
    scores[sBase + j] = e;
    total += e;
  }
  total = reduce(total, li, false);
  // Every invocation reads all the weights next: make this workgroup's writes to them visible.
  storageBarrier();
${
  vectors <= WG
    ? `  // Invocation li sums vector li % HDV of the values over positions li / HDV, + GROUPS, ...
  let group = li / HDV;
  let x = li % HDV;
  var acc = V(0.0);
  if (group < GROUPS) {
    for (var j = group; j < length; j += GROUPS) { acc += scores[sBase + j] * vCache[cBase + j * width + x]; }
  }
  sums[li] = acc;
  workgroupBarrier();
  if (li < HDV) {
    var sum = V(0.0);
    for (var k = 0u; k < GROUPS; k++) { sum += sums[k * HDV + li]; }
    out[qi + li] = sum / total;
  }`
    : `  // More vectors than invocations: each sums its vectors over every position.
  for (var x = li; x < HDV; x += ${WG}u) {
    var acc = V(0.0);
    for (var j = 0u; j < length; j++) { acc += scores[sBase + j] * vCache[cBase + j * width + x]; }
    out[qi + x] = acc / total;
  }`
}
}
`;
}

/** The row layout's attend: one invocation per head, the same online softmax as attention.ts's forward. */
function rowAttendShader(headDim: number): string {
  const u = new Unrolled(headDim, 1);
  const v = vectorOf(headDim);
  return /* wgsl */ `
struct Params { heads: u32, kvHeads: u32, headDim: u32, maxLen: u32, scale: f32, rows: u32, _p1: u32, _p2: u32 }
alias V = ${v.type};
${v.dot}
@group(0) @binding(0) var<storage, read> position: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<V>;
@group(0) @binding(2) var<storage, read> kCache: array<V>;
@group(0) @binding(3) var<storage, read> vCache: array<V>;
@group(0) @binding(4) var<storage, read_write> out: array<V>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  // Invocation gid.x is head h of sequence gid.x / heads.
  if (gid.x >= p.rows * p.heads) { return; }
  let h = gid.x % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let width = p.kvHeads * ${u.xs.length}u; // vectors per cache row
  let cBase = (gid.x / p.heads) * p.maxLen * width + g * ${u.xs.length}u;
  let qi = gid.x * ${u.xs.length}u;
${u.perVector((x) => `  let q${x} = q[qi + ${x}u] * p.scale;\n  var a${x} = V(0.0);`)}
  var m = -3.0e38;
  var t = 0.0;
  for (var j = 0u; j <= position[0]; j++) {
    let kj = cBase + j * width;
    let s = ${u.dot(
      (x) => `q${x}`,
      (x) => `kCache[kj + ${x}u]`,
    )};
    let mNew = max(m, s);
    let c = exp(m - mNew);
    let e = exp(s - mNew);
    m = mNew;
    t = t * c + e;
${u.perVector((x) => `    a${x} = a${x} * c + e * vCache[kj + ${x}u];`)}
  }
${u.perVector((x) => `  out[qi + ${x}u] = a${x} / t;`)}
}
`;
}

export interface DecodeShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  maxLen: number;
  /** Sequences decoded together, each with its own cache; 1 by default. */
  rows?: number;
}

export class DecodeAttentionKernels {
  private readonly rotateAppend: Kernel;
  /** The layout's attend kernels, compiled per head size (its vectors, unrolled). */
  private readonly attend = new Map<number, Kernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly layout: RowLayout = 'cooperative',
  ) {
    this.rotateAppend = new Kernel(device, rotateAppendShader, 'rotate_and_append');
  }

  /** Per row: qRot ← rope(q); key cache row p ← rope(k); value cache row p ← v. */
  rotateAppendOp(
    position: GPUBuffer,
    { q, k, v, cos, sin }: Record<'q' | 'k' | 'v' | 'cos' | 'sin', GPUBuffer>,
    { qRot, kCache, vCache }: Record<'qRot' | 'kCache' | 'vCache', GPUBuffer>,
    s: DecodeShape,
  ): Op {
    const rows = s.rows ?? 1;
    const n = rows * (s.heads + 2 * s.kvHeads) * s.headDim;
    return this.rotateAppend.op(
      [position, q, k, v, cos, sin, qRot, kCache, vCache],
      [u32(s.heads), u32(s.kvHeads), u32(s.headDim), u32(rows), u32(s.maxLen), u32(0), u32(0), u32(0)],
      grid1d(n, WG),
    );
  }

  /** out ← attention of the token at `position` over the caches; `scores` is the cooperative layout's scratch. */
  attendOp(
    position: GPUBuffer,
    q: GPUBuffer,
    kCache: GPUBuffer,
    vCache: GPUBuffer,
    scores: GPUBuffer,
    out: GPUBuffer,
    s: DecodeShape,
  ): Op {
    const heads = (s.rows ?? 1) * s.heads;
    const uniforms = [
      ...[u32(s.heads), u32(s.kvHeads), u32(s.headDim), u32(s.maxLen), f32(1 / Math.sqrt(s.headDim))],
      ...[u32(s.rows ?? 1), u32(0), u32(0)],
    ];
    if (this.layout === 'row') {
      return this.attendKernel(s.headDim).op([position, q, kCache, vCache, out], uniforms, grid1d(heads, WG));
    }
    return this.attendKernel(s.headDim).op([position, q, kCache, vCache, scores, out], uniforms, [heads, 1, 1]);
  }

  /** The layout's attend kernel for a head size. */
  private attendKernel(headDim: number): Kernel {
    let kernel = this.attend.get(headDim);
    if (!kernel) {
      kernel =
        this.layout === 'row'
          ? new Kernel(this.device, rowAttendShader(headDim), 'decode_attention_row')
          : new Kernel(this.device, cooperativeAttendShader(headDim), 'decode_attention');
      this.attend.set(headDim, kernel);
    }
    return kernel;
  }
}
