import { f32, grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import type { LowRank } from './matmul';
import type { RowLayout } from './wgsl';

/**
 * Matrix-vector product for decoding one token: y = alpha * W · x + beta * y, with W stored [N, K] row-major
 * (a linear layer's weight, or a LoRA matrix), x [K], y [N]; the matmul kernel's x · W^T for M = 1.
 *   x at offsetA, W at offsetB (elements), y at offsetC.
 * Batch-1 decoding reads every weight once per token, so this is about memory bandwidth. Two layouts, chosen per
 * adapter (`RowLayout`):
 *   - 'cooperative' (GPUs): each workgroup owns ROWS outputs and its invocations stride along K together, so
 *     consecutive invocations read consecutive words of a row, then reduce through workgroup memory; the tiled
 *     matmul would leave most of a 64-row tile idle and the GPU nearly empty.
 *   - 'row' (CPU adapters): each invocation owns one output and walks its row alone, with no workgroup memory and
 *     no barriers, which software adapters run as costly switches between invocations; a CPU core streams a
 *     row through its cache just as well alone.
 * W may be fp16, two values per 32-bit word (unpack2x16float, core WGSL); accumulation is fp32.
 * With a low-rank term (matmul.ts's `LowRank`: L [rank] = x A^T, R [N, rank] = B), each output also gets
 * scale · R[n] · L, LoRA's second product fused in: y = alpha (W x + s B (A x)) + beta y, one dispatch fewer per
 * adapted projection and token. `gatedOp` reads two matrices of one shape, the MLP's gate W and up U, and writes
 * silu(W x) ⊙ (U x) (each with its low-rank term): SwiGLU's three dispatches in one. W's rows may come in
 * segments, each from its own offset (`GemvShape.segments`): the q, k and v modules' LoRA A read as one product.
 * With `normed`, x is the residual stream and the product reads RMSNorm(x) ⊙ g (the layer's norm, eps from the
 * uniforms) instead: each invocation sums x² in the same pass that reads x for its dots, so the norm costs no
 * dispatch of its own and its output is never written. With a bias (Qwen2's q, k and v), each output adds its own:
 * y = alpha (W x + its low-rank term + bias) + beta y. `setOp` runs several products of one x (a token's q, k and
 * v) in one dispatch on GPUs, each from its own workgroups through a function handed its W, y and bias as storage
 * pointers: at batch 1 a GPU's decoding waits on its dispatches more than on its reading.
 */
const WG = 64;
const ROWS = 4;

/**
 * What a gemv kernel is compiled for: W's precision, whether it binds a low-rank term, and whether it is gated
 * (SwiGLU's two products, W the gate and U the up projection, and the gate itself in one pass).
 */
interface GemvVariant {
  halfW: boolean;
  lowRank: boolean;
  gated: boolean;
  normed: boolean;
  biased: boolean;
}

/** The matrices a variant multiplies x by: W, and U when gated. */
const matricesOf = (v: GemvVariant) => (v.gated ? ['W', 'U'] : ['W']);

/**
 * Every gemv kernel's parameters and bindings: x and the matrices read as scalars (fp16 pairs as u32), or as
 * vectors, a norm's weight g where it is normed, the bias where it has one; `rowStart(n)`, where W's row n starts; `lowRank(n, t)`, output n's low-rank term t (0: W's, 1: U's; 0
 * without any); and `store(n, w, u)`, output n from its sums over W's row (and U's).
 */
function bindings(v: GemvVariant, vectors: boolean, set = 0): string {
  const m = vectors ? (v.halfW ? 'vec4<u32>' : 'vec4f') : v.halfW ? 'u32' : 'f32';
  // A set of `set` products binds each one's W, y and bias (W0.., y0.., bias0..), handed to its function.
  const each = (decl: (i: string) => string) =>
    set ? Array.from({ length: set }, (_, i) => decl(String(i))) : [decl('')];
  const storage = [
    `var<storage, read> x: array<${vectors ? 'vec4f' : 'f32'}>`,
    ...matricesOf(v).flatMap((name) => each((i) => `var<storage, read> ${name}${i}: array<${m}>`)),
    ...each((i) => `var<storage, read_write> y${i}: array<f32>`),
    ...(v.normed ? [`var<storage, read> g: array<${vectors ? 'vec4f' : 'f32'}>`] : []),
    ...(v.biased ? each((i) => `var<storage, read> bias${i}: array<f32>`) : []),
    ...(v.lowRank ? ['var<storage, read> L: array<f32>', 'var<storage, read> R: array<f32>'] : []),
  ];
  // In a set, the product's uniforms and output (and bias) are parameters.
  const params = set ? 'p: Params, ' : '';
  const out = set
    ? `y: ptr<storage, array<f32>, read_write>, ${v.biased ? 'bias: ptr<storage, array<f32>, read>, ' : ''}`
    : '';
  const lowRank = v.lowRank
    ? `fn lowRank(${params}n: u32, t: u32) -> f32 {
  let rank = select(p.rank, p.rank2, t == 1u);
  let l = select(p.offsetL, p.offsetL2, t == 1u);
  let r = select(p.offsetR, p.offsetR2, t == 1u) + n * rank;
  var s = 0.0;
  for (var i = 0u; i < rank; i++) { s += L[l + i] * R[r + i]; }
  return select(p.scaleL, p.scaleL2, t == 1u) * s;
}`
    : `fn lowRank(${params}n: u32, t: u32) -> f32 { return 0.0; }`;
  const p = set ? 'p, ' : '';
  const store = v.gated
    ? `fn store(n: u32, w: f32, u: f32) {
  let g = w + lowRank(n, 0u);
  y[p.offsetC + n] = g / (1.0 + exp(-g)) * (u + lowRank(n, 1u));
}`
    : `fn store(${params}${out}n: u32, w: f32, u: f32) {
  var value = p.alpha * (w + lowRank(${p}n, 0u)${v.biased ? ' + bias[n]' : ''});
  if (p.beta != 0.0) { value += p.beta * y[p.offsetC + n]; }
  y[p.offsetC + n] = value;
}`;
  return /* wgsl */ `
struct Params {
  N: u32, K: u32, offsetA: u32, offsetB: u32, offsetC: u32, alpha: f32, beta: f32, segmentRows: u32,
  rank: u32, offsetL: u32, offsetR: u32, scaleL: f32, rank2: u32, offsetL2: u32, offsetR2: u32, scaleL2: f32,
  // Where the segments after the first start (elements); the first at offsetB.
  segments: vec4u,
  // In a set: the product's first workgroup.
  eps: f32, firstGroup: u32, _q1: u32, _q2: u32,
}
${set ? `struct Set { products: array<Params, ${set}> }\n` : ''}${storage.map((decl, i) => `@group(0) @binding(${i}) ${decl};`).join('\n')}
@group(0) @binding(${storage.length}) var<uniform> ${set ? 'params: Set' : 'p: Params'};

// W's rows come in segments of segmentRows, each from its own offset.
fn rowStart(${params}n: u32) -> u32 {
  let segment = n / p.segmentRows;
  let offset = select(p.segments[max(segment, 1u) - 1u], p.offsetB, segment == 0u);
  return offset + (n % p.segmentRows) * p.K;
}

${lowRank}

${store}`;
}

/** The second sum `store` takes: U's where the variant is gated. */
const upSum = (v: GemvVariant, sum: string) => (v.gated ? sum : '0.0');

/** The scale a normed variant's sums take, 1 / rms(x), from Σ x² over the row (`sumSquares`); 1 otherwise. */
const rstdOf = (v: GemvVariant, sumSquares: string) =>
  v.normed ? `inverseSqrt(${sumSquares} / f32(p.K) + p.eps)` : '1.0';

function cooperativeShader(v: GemvVariant, set = 0): string {
  // The ROWS rows advance together, each step loading a word of every row (independent loads a GPU keeps in flight
  // at once), so one reduction of a vector serves them all (and the norm's Σ x² rides along).
  const rowsOf = (m: string, at: (r: number) => string) =>
    `vec4f(${Array.from({ length: ROWS }, (_, r) => `${m}[${at(r)}]`).join(', ')})`;
  // W's loop also sums x² for a normed variant; the product reads x ⊙ g (the rstd scales the sums after).
  const dots = matricesOf(v).map((m, i) => {
    const squares = v.normed && i === 0;
    return v.halfW
      ? `// Word-aligned pairs: the caller guarantees K and offsetB are even.
    for (var k = li * 2u; k < p.K; k += ${2 * WG}u) {
      let words = vec4u(${Array.from({ length: ROWS }, (_, r) => `${m}[(row${r} + k) >> 1u]`).join(', ')});
      let xs = vec2f(x[p.offsetA + k], x[p.offsetA + k + 1u]);${squares ? '\n      ss += dot(xs, xs);' : ''}
      let xv = xs${v.normed ? ' * vec2f(g[k], g[k + 1u])' : ''};
      s${m} += vec4f(${Array.from({ length: ROWS }, (_, r) => `dot(unpack2x16float(words[${r}]), xv)`).join(', ')});
    }`
      : `for (var k = li; k < p.K; k += ${WG}u) {
      let xk = x[p.offsetA + k];${squares ? '\n      ss += xk * xk;' : ''}
      s${m} += ${rowsOf(m, (r) => `row${r} + k`)} * xk${v.normed ? ' * g[k]' : ''};
    }`;
  });
  // What the workgroup reduces: each matrix's four row sums, and Σ x² for a normed variant.
  const sums = [...matricesOf(v).map((m) => `s${m}`), ...(v.normed ? ['vec4f(ss)'] : [])];
  const p = set ? 'p, ' : '';
  const out = set ? `y, ${v.biased ? 'bias, ' : ''}` : '';
  const body = /* wgsl */ `
  // Rows past N repeat the last one (in bounds) and are not stored.
${Array.from({ length: ROWS }, (_, r) => `  let row${r} = rowStart(${p}min(first + ${r}u, p.N - 1u));`).join('\n')}
  ${matricesOf(v)
    .map((m) => `var s${m} = vec4f(0.0);`)
    .join('\n  ')}${v.normed ? '\n  var ss = 0.0;' : ''}
  ${dots.join('\n  ')}
  let totals = reduce(Sums(${sums.join(', ')}), li);
  let rstd = ${rstdOf(v, `totals[${sums.length - 1}].x`)};
  if (li == 0u) {
    for (var r = 0u; r < ${ROWS}u; r++) {
      if (first + r < p.N) { store(${p}${out}first + r, totals[0][r] * rstd, ${upSum(v, 'totals[1][r] * rstd')}); }
    }
  }`;
  const entry = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32)`;
  const m = v.halfW ? 'u32' : 'f32';
  // A set's product is a function handed its W, y (and bias); the entry finds the workgroup's product.
  const main = set
    ? /* wgsl */ `fn product(W: ptr<storage, array<${m}>, read>, y: ptr<storage, array<f32>, read_write>, ${v.biased ? 'bias: ptr<storage, array<f32>, read>, ' : ''}p: Params, first: u32, li: u32) {${body}
}

${entry} {
  let group = wg.x + wg.y * nwg.x;
  var which = 0u;
  for (var i = 1u; i < ${set}u; i++) {
    if (group >= params.products[i].firstGroup) { which = i; }
  }
  let p = params.products[which];
  let first = (group - p.firstGroup) * ${ROWS}u;
  switch which {
${Array.from({ length: set }, (_, i) => `    case ${i}u: { product(&W${i}, &y${i}, ${v.biased ? `&bias${i}, ` : ''}p, first, li); }`).join('\n')}
    default: {}
  }
}`
    : `${entry} {
  let first = (wg.x + wg.y * nwg.x) * ${ROWS}u;${body}
}`;
  return /* wgsl */ `
${bindings(v, false, set)}
alias Sums = array<vec4f, ${sums.length}>;
var<workgroup> partial: array<Sums, ${WG}>;

// The sums over the workgroup, to all its invocations (uniform control flow only: it has barriers).
fn reduce(value: Sums, li: u32) -> Sums {
  partial[li] = value;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      for (var i = 0u; i < ${sums.length}u; i++) { partial[li][i] += partial[li + stride][i]; }
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

${main}
`;
}

/** One output per invocation, its row walked alone, scalar loads: any K and offsets (see the header). */
function rowShader(v: GemvVariant): string {
  // W's loop also sums x² for a normed variant; the product reads x ⊙ g (the rstd scales the sums after).
  const dots = matricesOf(v).map((m, i) => {
    const squares = v.normed && i === 0;
    return v.halfW
      ? `// Word-aligned pairs: the caller guarantees K and offsetB are even.
  for (var k = 0u; k < p.K; k += 2u) {
    let xs = vec2f(x[p.offsetA + k], x[p.offsetA + k + 1u]);${squares ? '\n    ss += dot(xs, xs);' : ''}
    s${m} += dot(unpack2x16float(${m}[(row + k) >> 1u]), xs${v.normed ? ' * vec2f(g[k], g[k + 1u])' : ''});
  }`
      : `for (var k = 0u; k < p.K; k++) {
    let xk = x[p.offsetA + k];${squares ? '\n    ss += xk * xk;' : ''}
    s${m} += ${m}[row + k] * xk${v.normed ? ' * g[k]' : ''};
  }`;
  });
  return /* wgsl */ `
${bindings(v, false)}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * ${WG}u;
  if (n >= p.N) { return; }
  let row = rowStart(n);
  ${matricesOf(v)
    .map((m) => `var s${m} = 0.0;`)
    .join('\n  ')}${v.normed ? '\n  var ss = 0.0;' : ''}
  ${dots.join('\n  ')}
  let rstd = ${rstdOf(v, 'ss')};
  store(n, sW * rstd, ${upSum(v, 'sU * rstd')});
}
`;
}

/**
 * VEC_ROWS outputs per invocation, their rows read four floats (or eight halves) at a time, each x vector loaded
 * once for all of them: a quarter of the loads and loop steps, which is what a software adapter pays for. Needs
 * K, offsetA and offsetB aligned to whole vectors (`vectorFits`).
 */
const VEC_ROWS = 4;

/**
 * The vector kernel's x for step k: x0 (and x1 for eight halves), read through the norm's weight for a normed
 * variant, whose Σ x² grows as they are read.
 */
function xVectors(v: GemvVariant): string {
  const names = v.halfW ? ['x0', 'x1'] : ['x0'];
  return names
    .map((name, j) => {
      const at = v.halfW ? `2u * k + ${j}u` : 'k';
      if (!v.normed) return `let ${name} = x[xo + ${at}];`;
      return `let ${name}raw = x[xo + ${at}];\n    ss += dot(${name}raw, ${name}raw);\n    let ${name} = ${name}raw * g[${at}];`;
    })
    .join('\n    ');
}

function vectorRowShader(v: GemvVariant): string {
  const rows = Array.from({ length: VEC_ROWS }, (_, r) => r);
  const pairs = matricesOf(v).flatMap((m) => rows.map((r) => ({ m, r })));
  // fp16: one vec4<u32> holds eight weights, matched by two vec4 of x.
  const step = pairs
    .map(({ m, r }) =>
      v.halfW
        ? `{
      let w = ${m}[row${r} + k];
      acc${m}${r} += vec4f(unpack2x16float(w.x), unpack2x16float(w.y)) * x0
        + vec4f(unpack2x16float(w.z), unpack2x16float(w.w)) * x1;
    }`
        : `acc${m}${r} += ${m}[row${r} + k] * x0;`,
    )
    .join('\n    ');
  const sums = (m: string) => `array<f32, ${VEC_ROWS}>(${rows.map((r) => `dot(acc${m}${r}, vec4f(1.0))`).join(', ')})`;
  return /* wgsl */ `
${bindings(v, true)}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * ${WG}u) * ${VEC_ROWS}u;
  if (first >= p.N) { return; }
  // Per vector of W: 4 floats, or 8 halves.
  let perVector = ${v.halfW ? 8 : 4}u;
  let steps = p.K / perVector;
  ${rows.map((r) => `let row${r} = rowStart(min(first + ${r}u, p.N - 1u)) / perVector;`).join('\n  ')}
  ${pairs.map(({ m, r }) => `var acc${m}${r} = vec4f(0.0);`).join('\n  ')}
  let xo = p.offsetA / 4u;${v.normed ? '\n  var ss = 0.0;' : ''}
  for (var k = 0u; k < steps; k++) {
    ${xVectors(v)}
    ${step}
  }
  let rstd = ${rstdOf(v, 'ss')};
  ${matricesOf(v)
    .map((m) => `let sums${m} = ${sums(m)};`)
    .join('\n  ')}
  for (var r = 0u; r < ${VEC_ROWS}u; r++) {
    let n = first + r;
    if (n < p.N) { store(n, sumsW[r] * rstd, ${upSum(v, 'sumsU[r] * rstd')}); }
  }
}
`;
}

export interface GemvShape {
  N: number;
  K: number;
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  alpha?: number;
  beta?: number;
  /**
   * W's rows in segments of `rows` rows, the first at offsetB, the next at `offsets` (up to 3): several LoRA
   * modules' A (all reading x) as one product. Default: one segment of N rows.
   */
  segments?: { rows: number; offsets: readonly number[] };
}

/** An RMSNorm a gemv applies to x as it reads it: the norm's weight g [K] and its epsilon. */
export interface GemvNorm {
  weight: GPUBuffer;
  eps: number;
}

/** What a gemv may do beside W x: read fp16 W, add a low-rank term and a bias, read x through a norm. */
export interface GemvExtras {
  halfW?: boolean;
  lowRank?: LowRank;
  norm?: GemvNorm;
  /** [N], added to each output (fp32). */
  bias?: GPUBuffer;
}

/** A gemv's uniforms (Params): its shape, up to two low-rank terms, its norm's epsilon, and in a set its first group. */
function uniformsOf(s: GemvShape, terms: readonly LowRank[], norm?: GemvNorm, firstGroup = 0) {
  const segment = s.segments ?? { rows: s.N, offsets: [] };
  const term = (t: LowRank | undefined) => [
    u32(t?.rank ?? 0),
    u32(t?.offsetL ?? 0),
    u32(t?.offsetR ?? 0),
    f32(t?.scale ?? 0),
  ];
  return [
    ...[s.N, s.K, s.offsetA ?? 0, s.offsetB ?? 0, s.offsetC ?? 0].map(u32),
    f32(s.alpha ?? 1),
    f32(s.beta ?? 0),
    u32(segment.rows),
    ...term(terms[0]),
    ...term(terms[1]),
    ...[0, 1, 2, 3].map((i) => u32(segment.offsets[i] ?? 0)),
    ...[f32(norm?.eps ?? 0), u32(firstGroup), u32(0), u32(0)],
  ];
}

/** Every element offset W's rows start from: offsetB, then the later segments'. */
const offsetsOf = (s: GemvShape) => [s.offsetB ?? 0, ...(s.segments?.offsets ?? [])];

export class GemvKernels {
  /** Compiled on first use, by family and variant. */
  private readonly kernels = new Map<string, Kernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly layout: RowLayout = 'cooperative',
  ) {}

  /** Whether fp16 W can take this shape (pairs must not straddle words). */
  static halfFits(s: GemvShape): boolean {
    return s.K % 2 === 0 && offsetsOf(s).every((o) => o % 2 === 0);
  }

  /** Whether W's rows and x split into whole vectors: 4 floats, or 8 halves. */
  static vectorFits(s: GemvShape, halfW: boolean): boolean {
    const perVector = halfW ? 8 : 4;
    return s.K % perVector === 0 && offsetsOf(s).every((o) => o % perVector === 0) && (s.offsetA ?? 0) % 4 === 0;
  }

  /** y ← alpha (W x [+ the low-rank term] [+ bias]) + beta y, x read through `norm` where given. */
  op(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, s: GemvShape, o: GemvExtras = {}): Op {
    const { halfW = false, lowRank, norm, bias } = o;
    const v = { halfW, lowRank: Boolean(lowRank), gated: false, normed: Boolean(norm), biased: Boolean(bias) };
    return this.dispatch(v, [x, w, y], s, lowRank ? [lowRank] : [], norm, bias);
  }

  /**
   * y ← silu(W x + its low-rank term) ⊙ (U x + its low-rank term): SwiGLU's gate and up projections and the gate
   * itself in one dispatch (decoding's MLP; alpha and beta do not apply). W and U share the shape; their low-rank
   * terms, where present, read one L buffer and one R buffer (at their own offsets).
   */
  gatedOp(
    x: GPUBuffer,
    w: GPUBuffer,
    u: GPUBuffer,
    y: GPUBuffer,
    s: GemvShape,
    {
      halfW = false,
      lowRank = {},
      norm,
    }: Omit<GemvExtras, 'lowRank' | 'bias'> & { lowRank?: { w?: LowRank; u?: LowRank } } = {},
  ): Op {
    const terms = [lowRank.w, lowRank.u];
    const present = terms.filter((t): t is LowRank => t !== undefined);
    if (present.some((t) => t.l !== present[0].l || t.r !== present[0].r)) {
      throw new Error("a gated gemv's two low-rank terms must read the same L and R buffers");
    }
    // An absent term counts as rank 0 over the other's buffers.
    const none = present[0] && { ...present[0], rank: 0, offsetL: 0, offsetR: 0, scale: 0 };
    const v = { halfW, lowRank: present.length > 0, gated: true, normed: Boolean(norm), biased: false };
    return this.dispatch(v, [x, w, u, y], s, none ? terms.map((t) => t ?? none) : [], norm);
  }

  private dispatch(
    v: GemvVariant,
    buffers: GPUBuffer[],
    s: GemvShape,
    terms: LowRank[],
    norm?: GemvNorm,
    bias?: GPUBuffer,
  ): Op {
    if (v.halfW && !GemvKernels.halfFits(s))
      throw new Error(`fp16 gemv needs an even K and offsets (K ${s.K}, offsets ${offsetsOf(s)})`);
    const segment = s.segments ?? { rows: s.N, offsets: [] };
    if (segment.offsets.length > 3 || segment.rows * (1 + segment.offsets.length) !== s.N) {
      throw new Error(`a gemv's ${s.N} rows cannot be ${1 + segment.offsets.length} segments of ${segment.rows}`);
    }
    // The row layout reads vectors where the shape allows (its vector variant), else scalars.
    const family = this.layout === 'row' ? (GemvKernels.vectorFits(s, v.halfW) ? 'vector' : 'row') : 'cooperative';
    const outputsPerGroup = family === 'vector' ? WG * VEC_ROWS : family === 'row' ? WG : ROWS;
    return this.kernel(family, v).op(
      [
        ...buffers,
        ...(norm ? [norm.weight] : []),
        ...(bias ? [bias] : []),
        ...(terms.length > 0 ? [terms[0].l, terms[0].r] : []),
      ],
      uniformsOf(s, terms, norm),
      grid1d(s.N, outputsPerGroup),
    );
  }

  /**
   * Several products of one x (q, k and v), each y ← alpha (W x [+ its low-rank term] [+ its bias]) + beta y, x
   * read through `norm` where given, in one dispatch, each product from a fresh workgroup: the cooperative layout
   * only (GPUs, where a dispatch costs more than these products' reading; CPU adapters take them one by one).
   * Biases on all or none; low-rank terms reading one L and one R. Null where the device cannot bind them all.
   */
  setOp(
    x: GPUBuffer,
    products: ReadonlyArray<{ w: GPUBuffer; y: GPUBuffer; shape: GemvShape; lowRank?: LowRank; bias?: GPUBuffer }>,
    { halfW = false, norm }: Pick<GemvExtras, 'halfW' | 'norm'> = {},
  ): Op | null {
    if (this.layout !== 'cooperative') throw new Error('a gemv set runs in the cooperative layout');
    const biases = products.flatMap((product) => (product.bias ? [product.bias] : []));
    const terms = products.flatMap((product) => (product.lowRank ? [product.lowRank] : []));
    if (biases.length !== 0 && biases.length !== products.length)
      throw new Error('a gemv set has biases on all or none');
    if (terms.some((t) => t.l !== terms[0].l || t.r !== terms[0].r)) {
      throw new Error("a gemv set's low-rank terms must read one L and one R buffer");
    }
    for (const { shape } of products) {
      if (shape.segments) throw new Error("a gemv set's products are whole matrices, not segments");
      if (halfW && !GemvKernels.halfFits(shape))
        throw new Error(`fp16 gemv needs an even K and offsets (K ${shape.K})`);
    }
    const buffers = [
      x,
      ...products.map((product) => product.w),
      ...products.map((product) => product.y),
      ...(norm ? [norm.weight] : []),
      ...biases,
      ...(terms.length > 0 ? [terms[0].l, terms[0].r] : []),
    ];
    if (buffers.length > this.device.limits.maxStorageBuffersPerShaderStage) return null;
    const v = { halfW, lowRank: terms.length > 0, gated: false, normed: Boolean(norm), biased: biases.length > 0 };
    let groups = 0;
    const uniforms = products.flatMap(({ shape, lowRank }) => {
      const first = groups;
      groups += Math.ceil(shape.N / ROWS);
      return uniformsOf(shape, lowRank ? [lowRank] : [], norm, first);
    });
    return this.kernel('cooperative', v, products.length).op(buffers, uniforms, grid1d(groups, 1));
  }

  private kernel(family: 'cooperative' | 'row' | 'vector', v: GemvVariant, set = 0): Kernel {
    const key = `${family}${v.halfW ? ' f16w' : ''}${v.lowRank ? ' low-rank' : ''}${v.gated ? ' gated' : ''}${v.normed ? ' normed' : ''}${v.biased ? ' bias' : ''}${set ? ` set of ${set}` : ''}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const code = set
        ? cooperativeShader(v, set)
        : { cooperative: cooperativeShader, row: rowShader, vector: vectorRowShader }[family](v);
      kernel = new Kernel(this.device, code, `gemv ${key}`);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }
}
