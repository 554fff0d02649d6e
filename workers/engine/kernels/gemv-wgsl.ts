import { codesPerWord, dequantWgsl, groupSize, type QuantFormat } from './quant';
import { GELU_TANH_WGSL } from './swiglu';
import { uniformStruct } from './wgsl';

/** gemv.ts's shaders: the cooperative layout (and its sets), the row layout, and the row layout's vector variant. */

/** Invocations per workgroup. */
export const WG = 64;
/** Outputs per workgroup in the cooperative layout. */
export const ROWS = 4;

/**
 * What a gemv kernel is compiled for (`gated`: W the gate and U the up projection, SwiGLU between, or GeGLU with the
 * tanh GELU where `gelu`).
 */
export interface GemvVariant {
  halfW: boolean;
  /** W (and U) quantized (quant.ts): whole matrices read a word of codes at a time (cooperative and row layouts). */
  quantW?: QuantFormat;
  lowRank: boolean;
  gated: boolean;
  gelu?: boolean;
  normed: boolean;
  biased: boolean;
}

/**
 * A product's uniforms: `segmentRows` rows per segment, the first at offsetB, the rest at `segments`; up to two
 * low-rank terms (W's and U's); the norm's `eps`; in a set, the product's `firstGroup`.
 */
export const GEMV_PARAMS = uniformStruct({
  N: 'u32',
  K: 'u32',
  offsetA: 'u32',
  offsetB: 'u32',
  offsetC: 'u32',
  alpha: 'f32',
  beta: 'f32',
  segmentRows: 'u32',
  rank: 'u32',
  offsetL: 'u32',
  offsetR: 'u32',
  scaleL: 'f32',
  rank2: 'u32',
  offsetL2: 'u32',
  offsetR2: 'u32',
  scaleL2: 'f32',
  segments: { vec4u: 1 },
  eps: 'f32',
  firstGroup: 'u32',
});

/** The matrices a variant multiplies x by: W, and U when gated. */
const matricesOf = (v: GemvVariant) => (v.gated ? ['W', 'U'] : ['W']);

/**
 * Params and bindings (x and the matrices as scalars or `vectors`, the norm's g, the bias, L and R), then
 * `rowStart(n)`: where W's row n starts; `lowRank(n, t)`: output n's term t (0: W's, 1: U's); `store(n, w, u)`:
 * output n from its sums over W's row (and U's).
 */
function bindings(v: GemvVariant, vectors: boolean, set = 0): string {
  const m = v.quantW ? 'u32' : vectors ? (v.halfW ? 'vec4<u32>' : 'vec4f') : v.halfW ? 'u32' : 'f32';
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
    ? `${v.gelu ? GELU_TANH_WGSL : ''}
fn store(n: u32, w: f32, u: f32) {
  let g = w + lowRank(n, 0u);
  y[p.offsetC + n] = ${v.gelu ? 'geluTanh(g)' : 'g / (1.0 + exp(-g))'} * (u + lowRank(n, 1u));
}`
    : `fn store(${params}${out}n: u32, w: f32, u: f32) {
  var value = p.alpha * (w + lowRank(${p}n, 0u)${v.biased ? ' + bias[n]' : ''});
  if (p.beta != 0.0) { value += p.beta * y[p.offsetC + n]; }
  y[p.offsetC + n] = value;
}`;
  return /* wgsl */ `
${GEMV_PARAMS.wgsl}
${v.quantW ? dequantWgsl(v.quantW, matricesOf(v)) : ''}
${set ? `struct Set { products: array<Params, ${set}> }\n` : ''}${storage.map((decl, i) => `@group(0) @binding(${i}) ${decl};`).join('\n')}
@group(0) @binding(${storage.length}) var<uniform> ${set ? 'params: Set' : 'p: Params'};

// W's rows come in segments of segmentRows, each from its own offset.
fn rowStart(${params}n: u32) -> u32 {
  let segment = n / p.segmentRows;
  let offset = select(p.segments[0][max(segment, 1u) - 1u], p.offsetB, segment == 0u);
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

export function cooperativeShader(v: GemvVariant, set = 0): string {
  // The ROWS rows advance together, each step loading a word of every row (independent loads a GPU keeps in flight
  // at once), so one reduction of a vector serves them all (and the norm's Σ x² rides along).
  const rowsOf = (m: string, at: (r: number) => string) =>
    `vec4f(${Array.from({ length: ROWS }, (_, r) => `${m}[${at(r)}]`).join(', ')})`;
  // W's loop also sums x² for a normed variant; the product reads x ⊙ g (the rstd scales the sums after).
  const dots = matricesOf(v).map((m, i) => {
    const squares = v.normed && i === 0;
    if (v.quantW) {
      return quantDots(v, m, squares, {
        loop: (perWord) => `for (var k = li * ${perWord}u; k < p.K; k += ${perWord * WG}u)`,
        rows: Array.from({ length: ROWS }, (_, r) => `row${r}`),
        add: (terms) => `s${m} += vec4f(${terms.join(', ')});`,
      });
    }
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
  const m = v.halfW || v.quantW ? 'u32' : 'f32';
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

/** The row layout: an invocation per output walking its row alone, scalar loads (any K and offsets). */
export function rowShader(v: GemvVariant): string {
  // W's loop also sums x² for a normed variant; the product reads x ⊙ g (the rstd scales the sums after).
  const dots = matricesOf(v).map((m, i) => {
    const squares = v.normed && i === 0;
    if (v.quantW) {
      return quantDots(v, m, squares, {
        loop: (perWord) => `for (var k = 0u; k < p.K; k += ${perWord}u)`,
        rows: ['row'],
        add: (terms) => `s${m} += ${terms[0]};`,
      });
    }
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
 * A quantized matrix m's loop over one word of codes per step (4 or 8 weights of each row in `rows`, the element
 * where each row starts: a q8 W from any whole row, a 4-bit one whole), x read as vectors beside them; `add` takes
 * each row's dot product, scaled.
 */
function quantDots(
  v: GemvVariant,
  m: string,
  squares: boolean,
  shape: { loop: (perWord: number) => string; rows: string[]; add: (terms: string[]) => string },
): string {
  const format = v.quantW as QuantFormat;
  const perWord = codesPerWord(format);
  const halves = perWord / 4;
  const xs = Array.from({ length: halves }, (_, h) => {
    const at = (l: number) => `x[p.offsetA + k + ${4 * h + l}u]`;
    const gain = v.normed ? ` * vec4f(${[0, 1, 2, 3].map((l) => `g[k + ${4 * h + l}u]`).join(', ')})` : '';
    const square = squares ? `\n      ss += dot(xr${h}, xr${h});` : '';
    return `let xr${h} = vec4f(${[0, 1, 2, 3].map(at).join(', ')});${square}\n      let xv${h} = xr${h}${gain};`;
  }).join('\n      ');
  // Each row's number in W (its element start / K), once.
  const rows = shape.rows.map((row, r) => ({ start: row, q: `q${m}${r}` }));
  const terms = rows.map(({ q }) => quantTerm(m, q, 'k', halves, ['xv0', 'xv1']));
  return `${rows.map(({ start, q }) => `let ${q} = ${start} / p.K;`).join(' ')}
    ${shape.loop(perWord)} {
      ${xs}
      ${shape.add(terms)}
    }`;
}

/** Row q of quantized m at column k, its word's weights · x (one vec4f, or two for 4-bit), scaled. */
function quantTerm(m: string, q: string, k: string, halves: number, x: [string, string]): string {
  const at = `${q}, ${k}, p.N, p.K`;
  const levels = `levels_${m}(${m}[codeWord_${m}(${at})])`;
  return `scale_${m}(${at}) * ${halves === 1 ? `dot(${levels}, ${x[0]})` : `dotPair(${levels}, ${x[0]}, ${x[1]})`}`;
}

/**
 * The row layout's variant for a quantized W (offsetA whole vectors, K whole steps of 8): VEC_ROWS outputs per
 * invocation, walking each scale's group (a q8 row is one group) eight weights a step, x's two vec4 loaded once for
 * all the rows; each group's sums scaled once.
 */
export function quantVectorShader(v: GemvVariant): string {
  const format = v.quantW as QuantFormat;
  const q8 = codesPerWord(format) === 4;
  const rows = Array.from({ length: VEC_ROWS }, (_, r) => r);
  const pairs = matricesOf(v).flatMap((m) => rows.map((r) => ({ m, r })));
  const xs = [0, 1]
    .map((h) => {
      const raw = `x[xo + k / 4u + ${h}u]`;
      if (!v.normed) return `let x${h} = ${raw};`;
      return `let x${h}raw = ${raw};\n      ss += dot(x${h}raw, x${h}raw);\n      let x${h} = x${h}raw * g[k / 4u + ${h}u];`;
    })
    .join('\n      ');
  // Eight weights of row q at column k: two q8 words, or one 4-bit word.
  const eight = (m: string, r: number) => {
    const word = `codeWord_${m}(q${r}, k, p.N, p.K)`;
    return q8
      ? `dot(levels_${m}(${m}[${word}]), x0) + dot(levels_${m}(${m}[${word} + 1u]), x1)`
      : `dotPair(levels_${m}(${m}[${word}]), x0, x1)`;
  };
  const step = `${xs}
      ${pairs.map(({ m, r }) => `in${m}${r} += ${eight(m, r)};`).join('\n      ')}`;
  const zero = pairs.map(({ m, r }) => `var in${m}${r} = 0.0;`).join('\n    ');
  const scaled = (at: string) =>
    pairs.map(({ m, r }) => `acc${m}${r} += scale_${m}(q${r}, ${at}, p.N, p.K) * in${m}${r};`).join('\n    ');
  // A q8 row is one group; a 4-bit group's 4 or 8 steps are written out, no loop inside it (decoding over q4 ran
  // about 8% faster on SwiftShader).
  const group = groupSize(format, 0);
  const groupSteps = Array.from(
    { length: group / 8 },
    (_, i) => `{\n      let k = k0 + ${8 * i}u;\n      ${step}\n    }`,
  );
  const body = q8
    ? `${zero}
  for (var k = 0u; k < p.K; k += 8u) {
    ${step}
  }
  ${scaled('0u')}`
    : `for (var k0 = 0u; k0 < p.K; k0 += ${group}u) {
    ${zero}
    ${groupSteps.join('\n    ')}
    ${scaled('k0')}
  }`;
  return /* wgsl */ `
${bindings(v, true)}

${vectorRowsEntry}
  // Rows past N repeat the last one (in bounds) and are not stored.
  ${rows.map((r) => `let q${r} = p.offsetB / p.K + min(first + ${r}u, p.N - 1u);`).join('\n  ')}
  ${pairs.map(({ m, r }) => `var acc${m}${r} = 0.0;`).join('\n  ')}
  let xo = p.offsetA / 4u;${v.normed ? '\n  var ss = 0.0;' : ''}
  ${body}
  let rstd = ${rstdOf(v, 'ss')};
  ${rows.map((r) => `if (first + ${r}u < p.N) { store(first + ${r}u, accW${r} * rstd, ${upSum(v, `accU${r} * rstd`)}); }`).join('\n  ')}
}
`;
}

/** Outputs per invocation of the row layout's vector variant. */
export const VEC_ROWS = 4;

/** The vector variants' entry: this invocation's VEC_ROWS outputs from `first`, if any are inside y. */
const vectorRowsEntry = /* wgsl */ `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * ${WG}u) * ${VEC_ROWS}u;
  if (first >= p.N) { return; }`;

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

/**
 * The row layout's vector variant: VEC_ROWS outputs per invocation, rows read 4 floats (or 8 halves) a step, each x
 * vector loaded once for all of them; a quarter of the loads, which a software adapter pays for. Needs whole
 * vectors (`GemvKernels.vectorFits`).
 */
export function vectorRowShader(v: GemvVariant): string {
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

${vectorRowsEntry}
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
