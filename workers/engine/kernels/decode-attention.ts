import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { Unrolled, vectorOf } from './attention-wgsl';
import { type RowLayout, uniformStruct, workgroupReduce } from './wgsl';

const PARAMS = uniformStruct({
  heads: 'u32',
  kvHeads: 'u32',
  maxLen: 'u32',
  rows: 'u32',
  scale: 'f32',
  eps: 'f32',
  window: 'u32',
  cacheLen: 'u32',
});

/**
 * One decoding step's attention for `rows` sequences at one position p, with the rotary embeddings and the cache
 * append, in one dispatch:
 *   position [1] u32 = p;  q [rows, H·hd], k, v [rows, KV·hd] (q, k not yet rotated);  rotary [hd]: cos, sin at p
 *   kCache, vCache [rows, cacheLen, KV·hd] (position-major: an append is one row; position j in row j % cacheLen, a
 *   ring of the last cacheLen positions where cacheLen < maxLen: a local layer's window);  out [rows, H·hd]
 *   out_h = Σ_{p − window < j ≤ p} softmax_j(scale · q_h · k_{j,g}) v_{j,g},  g = h / (H / KV),  q and k rotated
 *   (and per-head normed first with Qwen3's and Gemma's `norms`);  cache row p ← rotated k and v, written by heads
 *   with h % (H / KV) = 0;  window: Gemma's local layers' (else every position), scale head_dim^-½ unless given
 * Position p is read from k and v, not from the cache, so no head waits on another's append.
 * `RowLayout`: a workgroup per head sharing its positions (GPUs), or an invocation per head with an online softmax
 * (CPU adapters); the head's vectors unrolled into registers, each rotated against the vector half a head away.
 */
const WG = 64;

/** The vector type of a head's halves, and the head's vectors unrolled. */
function vectors(headDim: number) {
  const v = vectorOf(headDim / 2);
  return { v, u: new Unrolled(headDim, 1, v.width), half: headDim / 2 / v.width };
}

/**
 * WGSL for vector i (a constant) of the head row at vector `base` of `array`, times the norm's weight where
 * `weights` starts (a vector index into `norms`: q's at 0, k's at HDV).
 */
function element(array: string, base: string, i: number, weights: string | null): string {
  return weights ? `(${array}[${base} + ${i}u] * norms[${weights} + ${i}u])` : `${array}[${base} + ${i}u]`;
}

/**
 * WGSL for vector x (a constant) of a head row, `at(i)` its vector i, rotated: its pair's angles from the tables,
 * the first half's partner subtracted, the second half's added.
 */
function rotatedVector(at: (i: number) => string, x: number, half: number): string {
  const [partner, sign] = x < half ? [x + half, '-'] : [x - half, '+'];
  return `(${at(x)} * rotary[${x % half}u] ${sign} ${at(partner)} * rotary[${half + (x % half)}u])`;
}

/** WGSL for 1 / RMS of the head row at `base` of `array` (the per-head norm's rstd), its vectors unrolled. */
function rstdOf(u: Unrolled, array: string, base: string): string {
  const sum = u.dot(
    (x) => `${array}[${base} + ${x}u]`,
    (x) => `${array}[${base} + ${x}u]`,
  );
  return `inverseSqrt((${sum}) / ${u.headDim}.0 + p.eps)`;
}

/**
 * Bindings and parameters both layouts share, then the norms' weights where normed, then `more` (the layout's
 * own), then the parameters.
 */
function bindings(normed: boolean, more: string[]): string {
  const storage = [
    'read> position: array<u32>',
    'read> q: array<V>',
    'read> k: array<V>',
    'read> v: array<V>',
    'read> rotary: array<V>',
    'read_write> kCache: array<V>',
    'read_write> vCache: array<V>',
    'read_write> out: array<V>',
    ...(normed ? ['read> norms: array<V>'] : []),
    ...more,
  ];
  return /* wgsl */ `
${PARAMS.wgsl}
${storage.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b};`).join('\n')}
@group(0) @binding(${storage.length}) var<uniform> p: Params;`;
}

/** q's registers, normed (where `normed`), rotated and scaled: q0, q1, ... */
function queryRegisters(u: Unrolled, half: number, normed: boolean): string {
  const scale = normed ? `p.scale * ${rstdOf(u, 'q', 'qi')}` : 'p.scale';
  const at = (i: number) => element('q', 'qi', i, normed ? '0u' : null);
  return `  let qScale = ${scale};\n${u.perVector((x) => `  let q${x} = ${rotatedVector(at, x, half)} * qScale;`)}`;
}

/**
 * The cooperative layout: a workgroup per head and row. Its invocations rotate the new key into workgroup memory,
 * score positions in turn (each a dot product of q with a key, read a vector at a time and unrolled, so its loads
 * are all in flight at once), then split the weighted sum of values two ways, over the head's vectors and over
 * interleaved groups of positions, so each walks a share of the cache instead of all of it; the groups' sums meet
 * in workgroup memory.
 */
function cooperativeShader(headDim: number, normed: boolean): string {
  const { v, u, half } = vectors(headDim);
  const HDV = u.xs.length;
  // Groups of positions the values are summed in: as many as the workgroup holds whole rows of vectors.
  const groups = Math.max(1, Math.floor(WG / HDV));
  return /* wgsl */ `
alias V = ${v.type};
${v.dot}
const HDV = ${HDV}u; // vectors per head row
const HALF = ${half}u; // vectors per half row
const GROUPS = ${groups}u;
${bindings(normed, ['read_write> scores: array<f32>'])}
${workgroupReduce(WG)}
var<workgroup> kNew: array<V, HDV>;
${HDV <= WG ? `var<workgroup> sums: array<V, ${WG}>;` : ''}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  // Workgroup wg.x is head h of sequence r.
  let r = wg.x / p.heads;
  let h = wg.x % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let pos = position[0];
  let oldest = select(0u, pos + 1u - p.window, pos + 1u > p.window); // the window's first position
  let width = p.kvHeads * HDV; // vectors per cache row
  let cBase = r * p.cacheLen * width + g * HDV;
  let ki = r * width + g * HDV;
  let qi = wg.x * HDV;
  let sBase = wg.x * p.maxLen;
  // The new key, rotated, for every invocation to read; it and the value go to cache row p from one head a group.
  let appends = h % (p.heads / p.kvHeads) == 0u;${
    normed
      ? `
  // The key's per-head norm: every invocation sums its squares itself.
  var squares = 0.0;
  for (var x = 0u; x < HDV; x++) { squares += vdot(k[ki + x], k[ki + x]); }
  let kScale = inverseSqrt(squares / ${headDim}.0 + p.eps);`
      : ''
  }
  for (var x = li; x < HDV; x += ${WG}u) {
    let first = x < HALF;
    let at = x % HALF;
    let px = select(x - HALF, x + HALF, first);
    let kx = k[ki + x]${normed ? ' * norms[HDV + x] * kScale' : ''};
    let partner = k[ki + px]${normed ? ' * norms[HDV + px] * kScale' : ''};
    kNew[x] = kx * rotary[at] + select(1.0, -1.0, first) * partner * rotary[HALF + at];
    if (appends) {
      kCache[cBase + (pos % p.cacheLen) * width + x] = kNew[x];
      vCache[cBase + (pos % p.cacheLen) * width + x] = v[ki + x];
    }
  }
  workgroupBarrier();
${queryRegisters(u, half, normed)}
  var m = -3.0e38;
  for (var j = oldest + li; j < pos; j += ${WG}u) {
    let kj = cBase + (j % p.cacheLen) * width;
    let s = ${u.dot(
      (x) => `q${x}`,
      (x) => `kCache[kj + ${x}u]`,
    )};
    scores[sBase + j] = s;
    m = max(m, s);
  }
  if (li == (pos - oldest) % ${WG}u) {
    let s = ${u.dot(
      (x) => `q${x}`,
      (x) => `kNew[${x}u]`,
    )};
    scores[sBase + pos] = s;
    m = max(m, s);
  }
  m = reduce(m, li, true);
  var total = 0.0;
  for (var j = oldest + li; j <= pos; j += ${WG}u) {
    let e = exp(scores[sBase + j] - m);
    scores[sBase + j] = e;
    total += e;
  }
  total = reduce(total, li, false);
  // Every invocation reads all the weights next: make this workgroup's writes to them visible.
  storageBarrier();
${
  HDV <= WG
    ? `  // Invocation li sums vector li % HDV of the values over positions li / HDV, + GROUPS, ... (p from v itself).
  let group = li / HDV;
  let x = li % HDV;
  var acc = V(0.0);
  if (group < GROUPS) {
    for (var j = oldest + group; j < pos; j += GROUPS) {
      acc += scores[sBase + j] * vCache[cBase + (j % p.cacheLen) * width + x];
    }
    if ((pos - oldest) % GROUPS == group) { acc += scores[sBase + pos] * v[ki + x]; }
  }
  sums[li] = acc;
  workgroupBarrier();
  if (li < HDV) {
    var sum = V(0.0);
    for (var i = 0u; i < GROUPS; i++) { sum += sums[i * HDV + li]; }
    out[qi + li] = sum / total;
  }`
    : `  // More vectors than invocations: each sums its vectors over every position (p from v itself).
  for (var x = li; x < HDV; x += ${WG}u) {
    var acc = scores[sBase + pos] * v[ki + x];
    for (var j = oldest; j < pos; j++) { acc += scores[sBase + j] * vCache[cBase + (j % p.cacheLen) * width + x]; }
    out[qi + x] = acc / total;
  }`
}
}
`;
}

/** The row layout: one invocation per head, the same online softmax as attention.ts's forward. */
function rowShader(headDim: number, normed: boolean): string {
  const { v, u, half } = vectors(headDim);
  const HDV = u.xs.length;
  const key = (i: number) => element('k', 'ki', i, normed ? `${HDV}u` : null);
  return /* wgsl */ `
alias V = ${v.type};
${v.dot}
${bindings(normed, [])}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  // Invocation gid.x is head h of sequence r.
  if (gid.x >= p.rows * p.heads) { return; }
  let r = gid.x / p.heads;
  let h = gid.x % p.heads;
  let g = h / (p.heads / p.kvHeads);
  let pos = position[0];
  let oldest = select(0u, pos + 1u - p.window, pos + 1u > p.window); // the window's first position
  let width = p.kvHeads * ${HDV}u; // vectors per cache row
  let cBase = r * p.cacheLen * width + g * ${HDV}u;
  let ki = r * width + g * ${HDV}u;
  let qi = gid.x * ${HDV}u;
${queryRegisters(u, half, normed)}
${u.perVector((x) => `  var a${x} = V(0.0);`)}
  var m = -3.0e38;
  var t = 0.0;
  for (var j = oldest; j < pos; j++) {
    let kj = cBase + (j % p.cacheLen) * width;
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
  // Position p from the new key and value, which one head of the group writes to cache row p.
  let kScale = ${normed ? rstdOf(u, 'k', 'ki') : '1.0'};
${u.perVector((x) => `  let k${x} = ${rotatedVector(key, x, half)} * kScale;\n  let v${x} = v[ki + ${x}u];`)}
  let s = ${u.dot(
    (x) => `q${x}`,
    (x) => `k${x}`,
  )};
  let mNew = max(m, s);
  let c = exp(m - mNew);
  let e = exp(s - mNew);
  t = t * c + e;
${u.perVector((x) => `  out[qi + ${x}u] = (a${x} * c + e * v${x}) / t;`)}
  if (h % (p.heads / p.kvHeads) == 0u) {
    let row = cBase + (pos % p.cacheLen) * width;
${u.perVector(
  (x) => `    kCache[row + ${x}u] = k${x};
    vCache[row + ${x}u] = v${x};`,
)}
  }
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
  /** Multiplies q · k; head_dim^-½ when left out. */
  scale?: number;
  /** Sliding-window attention: the last `window` positions, the new one included; all when left out. */
  window?: number;
  /** Rows a sequence's cache holds (a ring, at least `window`); maxLen when left out. */
  cacheLength?: number;
}

/**
 * The position [1] u32, the new tokens' q/k/v, the position's rotary angles (`rotary` [hd]: its cos [hd / 2] then
 * its sin), the caches, scratch and output.
 */
export type DecodeAttentionIo = Record<
  'position' | 'q' | 'k' | 'v' | 'rotary' | 'kCache' | 'vCache' | 'scores' | 'out',
  GPUBuffer
>;

export class DecodeAttentionKernels {
  /** The layout's kernels, compiled per head size (its vectors, unrolled) and whether q and k are normed. */
  private readonly kernels = new Map<string, Kernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly layout: RowLayout = 'cooperative',
  ) {}

  /**
   * out ← attention of the tokens at `position` over the caches and themselves, q and k rotated first (normed
   * before, per head, with `norms.weights` [2, hd]: q's then k's); their keys and values appended to cache row
   * `position`. `scores` is the cooperative layout's scratch. Ten storage buffers at most, normed and cooperative:
   * Chrome's limit on many devices.
   */
  op(
    { position, q, k, v, rotary, kCache, vCache, scores, out }: DecodeAttentionIo,
    s: DecodeShape,
    norms?: { weights: GPUBuffer; eps: number },
  ): Op {
    if (s.headDim % 2 !== 0) throw new Error(`rotary embeddings need an even head size, not ${s.headDim}`);
    const rows = s.rows ?? 1;
    const heads = rows * s.heads;
    const { kvHeads, maxLen } = s;
    const scale = s.scale ?? 1 / Math.sqrt(s.headDim);
    const window = s.window ?? maxLen;
    const cacheLen = s.cacheLength ?? maxLen;
    if (cacheLen < Math.min(window, maxLen)) {
      throw new Error(`a cache of ${cacheLen} positions cannot hold a window of ${window}`);
    }
    const eps = norms?.eps ?? 0;
    const uniforms = PARAMS.pack({ heads: s.heads, kvHeads, maxLen, rows, scale, eps, window, cacheLen });
    const buffers = [position, q, k, v, rotary, kCache, vCache, out, ...(norms ? [norms.weights] : [])];
    const kernel = this.kernel(s.headDim, Boolean(norms));
    if (this.layout === 'row') return kernel.op(buffers, uniforms, grid1d(heads, WG));
    return kernel.op([...buffers, scores], uniforms, [heads, 1, 1]);
  }

  /** The layout's kernel for a head size, with or without the per-head norms. */
  private kernel(headDim: number, normed: boolean): Kernel {
    const key = `${headDim} ${normed}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const label = normed ? '_normed' : '';
      kernel =
        this.layout === 'row'
          ? new Kernel(this.device, rowShader(headDim, normed), `decode_attention_row${label}`)
          : new Kernel(this.device, cooperativeShader(headDim, normed), `decode_attention${label}`);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }
}
