import { f32, Kernel, type UniformValue, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { DROPOUT_FACTOR_WGSL, dropoutThreshold } from './dropout';

/**
 * Batched matrix multiply on the GPU: C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b].
 *
 *   op(A): [M, K]; stored as [M, K] (row-major, leading dimension lda) or, with transA, as [K, M].
 *   op(B): [K, N]; stored as [K, N] or, with transB, as [N, K].
 *
 * The three products of a linear layer y = x W^T map onto it without copies:
 *   forward   y  = x  · W^T     A = x [T, in],   B = W [out, in]  transB
 *   input     dx = dy · W       A = dy [T, out], B = W [out, in]
 *   weight    dW = dy^T · x     A = dy [T, out]  transA, B = x [T, in]
 *
 * Batches run along the dispatch's z: matrix b of A and C is at offset + b * stride, of B at
 * offsetB + floor(b / batchDivB) * strideB, so query heads can share their key/value head (grouped-query attention).
 *
 * Two families, chosen per adapter (software and hardware adapters want opposite trade-offs):
 *   registers: each invocation computes a TM x TN block of C in registers, reading A and B straight from
 *              storage. Fastest on CPU adapters (SwiftShader, lavapipe), where caches do the staging. With
 *              `vectorK`, the x·Wᵀ layout reads both operands' rows along K as vectors and multiplies them as
 *              dot products: a quarter of the loads, which a software adapter pays for one by one.
 *   tiled:     the workgroup stages BK-deep slices of its A and B tiles in workgroup memory, loaded so that
 *              neighbouring invocations read neighbouring addresses whatever the layout, then each invocation
 *              computes its TM x TN block from there. What GPUs want: coalesced loads, each loaded value
 *              reused by a whole row or column of invocations.
 * Out-of-range rows and columns are clamped (registers) or zero-filled (tiled) on load and skipped on store, so
 * any M, N, K work.
 *
 * With a low-rank term (`LowRank`, variants with `lowRank`), each invocation adds scale · L·op(R) to its sums
 * before storing: LoRA's second product fused into the base one, one dispatch and one pass over C fewer. With an
 * operand mask (`OperandMask`, variants with `maskedOperand`), one operand is read through a LoRA module's dropout:
 * the adapter path's dropout(x) is never written out.
 */

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** Stage tiles in workgroup memory (the tiled family); registers-only otherwise. */
  tiled?: boolean;
  /**
   * B holds fp16 values, two per 32-bit word (frozen base weights kept at half the memory); they are widened
   * with unpack2x16float, which is core WGSL, so no shader-f16 feature is needed. Accumulation stays fp32.
   */
  halfB?: boolean;
  /**
   * Registers family, x·Wᵀ layout (transB, not transA): rows of A and B read along K four floats (or eight fp16
   * halves) at a time (`vectorKFits`); other layouts, and shapes whose rows, offsets or strides do not split into
   * whole vectors, run the plain register kernel.
   */
  vectorK?: boolean;
  /** Rows of C per invocation. */
  tileM: 4 | 8;
  /** Columns of C per invocation (a multiple of 4: they are held as vec4). */
  tileN: 4 | 8;
  /** Workgroup size: x runs along N, y along M. */
  workgroupX: number;
  workgroupY: number;
  /**
   * Tiled family: the workgroup's invocations in this many slices along K (2 or 4; workgroup size z), each
   * staging and multiplying its own K tiles, their sums added through workgroup memory before the store. For
   * products with few output tiles: more invocations work on each tile, without split-K's partial sums and
   * reduce pass.
   */
  kSlices?: number;
  /** Binds L and R of a low-rank term (`LowRank`); only for transA false and batch 1. */
  lowRank?: boolean;
  /** The low-rank term carries a dropout mask (`LowRank.mask`), so the variant binds the dropout state too. */
  maskedLowRank?: boolean;
  /** This operand (fp32) is read through a dropout mask (`OperandMask`); not with a low-rank term. */
  maskedOperand?: 'a' | 'b';
}

/**
 * A LoRA module's dropout applied to an operand as it is read: the element at storage index offset + i (the
 * operand's offset) is scaled by the mask's value i, drawn as kernels/dropout.ts draws it, and a dropped one is 0.
 * The forward's x Aᵀ reads dropout(x) as A, and dA += d(x Aᵀ)ᵀ dropout(x) as B, from x itself.
 */
export interface OperandMask {
  operand: 'a' | 'b';
  state: GPUBuffer;
  module: number;
  p: number;
}

/**
 * A low-rank term added inside the product: C = alpha * (op(A)·op(B) + scale * L·op(R)) + beta * C, with L
 * [M, rank] row-major and op(R) [rank, N] stored as B is (transB: [N, rank], else [rank, N]), both fp32, at element
 * offsets. LoRA's forward x·Wᵀ + s (x Aᵀ) Bᵀ is L = x Aᵀ, R = B; its input gradient dy·W + d(x Aᵀ) A is
 * L = d(x Aᵀ), R = A.
 */
export interface LowRank {
  l: GPUBuffer;
  r: GPUBuffer;
  rank: number;
  offsetL?: number;
  offsetR?: number;
  scale: number;
  /**
   * A LoRA module's dropout mask on the term, element (m, n) scaled by the mask's value m·N + n, as the dropout
   * kernel draws it (kernels/dropout.ts): the input gradient's dropout'(d(x Aᵀ) A). C must be dense [M, N].
   */
  mask?: { state: GPUBuffer; module: number; p: number };
}

export const DEFAULT_MATMUL_TILE = { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 } as const;

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  batch?: number;
  /** Leading dimensions; default to the dense layout implied by the transposes. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Elements between consecutive batch matrices; default dense. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Consecutive batch entries that share one B matrix (grouped-query attention); default 1. */
  batchDivB?: number;
  /** Element offsets of the first matrix inside each buffer. */
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  alpha?: number;
  /** 0 overwrites C; 1 accumulates into it (gradient accumulation). */
  beta?: number;
}

/** The shape with every default filled in, in the order the uniform buffer holds it. */
export function resolveMatmulShape(shape: MatmulShape, variant: Pick<MatmulVariant, 'transA' | 'transB'>) {
  const { M, N, K } = shape;
  const lda = shape.lda ?? (variant.transA ? M : K);
  const ldb = shape.ldb ?? (variant.transB ? K : N);
  const ldc = shape.ldc ?? N;
  return {
    M,
    N,
    K,
    batch: shape.batch ?? 1,
    lda,
    ldb,
    ldc,
    strideA: shape.strideA ?? M * K,
    strideB: shape.strideB ?? K * N,
    strideC: shape.strideC ?? M * N,
    batchDivB: shape.batchDivB ?? 1,
    offsetA: shape.offsetA ?? 0,
    offsetB: shape.offsetB ?? 0,
    offsetC: shape.offsetC ?? 0,
    alpha: shape.alpha ?? 1,
    beta: shape.beta ?? 0,
  };
}

/**
 * The buffers a set of products (matmul-set.ts) binds: `as` A operands, `bs` B operands and `cs` outputs, each
 * product's form naming its three by index, for `products` products (each with a form index in its uniforms).
 */
export interface SetLayout {
  as: number;
  bs: number;
  cs: number;
  forms: { a: number; b: number; c: number }[];
  products: number;
}

/** The tiled family's shader for a set of products in one dispatch (variant.tiled, no operand mask). */
export function matmulSetShader(v: MatmulVariant, set: SetLayout): string {
  if (!v.tiled || v.maskedOperand) throw new Error('a matmul set runs tiled products without operand masks');
  return tiledShader(v, set);
}

export function matmulShader(v: MatmulVariant): string {
  if (v.tiled) return tiledShader(v);
  return usesVectorK(v) ? vectorKShader(v) : registersShader(v);
}

/**
 * Whether the variant reads along K in vectors at all (see `vectorK`). Not through an operand mask: a hash per
 * lane of every vector, unrolled, took SwiftShader minutes to compile, and the masked products are LoRA's small ones.
 */
function usesVectorK(v: MatmulVariant): boolean {
  return Boolean(v.vectorK && !v.tiled && v.transB && !v.transA && !v.maskedOperand);
}

/** Whether every row of A and B in the shape starts on a whole vector: 4 floats of A, 4 floats or 8 halves of B. */
export function vectorKFits(shape: MatmulShape, v: MatmulVariant): boolean {
  const s = resolveMatmulShape(shape, v);
  const perB = v.halfB ? 8 : 4;
  return (
    [s.K, s.ldb, s.offsetB, s.strideB].every((n) => n % perB === 0) &&
    [s.lda, s.offsetA, s.strideA].every((n) => n % 4 === 0)
  );
}

/**
 * The bindings after the operands, from `first` on: a low-rank term's L and R, a dropout mask's state (the term's
 * or an operand's), then the uniforms; with a mask, `maskFactor(i)`, value i's dropout multiplier, and
 * `masked(x, i)`, x through it.
 */
export function extraBindings(
  v: Pick<MatmulVariant, 'lowRank' | 'maskedLowRank' | 'maskedOperand'>,
  first: number,
  uniform = 'p: Params',
): string {
  const storage = [
    ...(v.lowRank ? ['L: array<f32>', 'R: array<f32>'] : []),
    ...(v.maskedLowRank || v.maskedOperand ? ['maskState: array<u32>'] : []),
  ];
  const bindings = [
    ...storage.map((decl, i) => `@group(0) @binding(${first + i}) var<storage, read> ${decl};`),
    `@group(0) @binding(${first + storage.length}) var<uniform> ${uniform};`,
  ].join('\n');
  if (!(v.maskedLowRank || v.maskedOperand)) return bindings;
  // In a set (matmul-set.ts) the product's uniforms are a parameter, not the module's p.
  const own = uniform === 'p: Params';
  return `${bindings}
${DROPOUT_FACTOR_WGSL}

fn maskFactor(${own ? '' : 'p: Params, '}i: u32) -> f32 {
  return dropoutFactor(i, maskState[0], maskState[1] != 0u, p.moduleId, p.threshold, p.maskScale);
}

// A dropped value is 0 even where x is not finite.
fn masked(${own ? '' : 'p: Params, '}x: f32, i: u32) -> f32 {
  let f = maskFactor(${own ? '' : 'p, '}i);
  return select(0.0, x * f, f != 0.0);
}`;
}

/** The buffers to bind after the operands: the low-rank term's, then the dropout state of its or an operand's mask. */
export function extraBuffers(lowRank: LowRank | undefined, operandMask?: OperandMask): GPUBuffer[] {
  const state = lowRank?.mask?.state ?? operandMask?.state;
  return [...(lowRank ? [lowRank.l, lowRank.r] : []), ...(state ? [state] : [])];
}

/**
 * Bindings and uniforms; A and B as scalars with loadB (B's element i as f32, whatever its storage), or with
 * `vectors` as vec4 (B's fp16 as vec4<u32>, eight halves).
 */
const header = (v: MatmulVariant, vectors = false, set?: SetLayout) => /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  lda: u32, ldb: u32, ldc: u32, strideA: u32,
  strideB: u32, strideC: u32, offsetA: u32, offsetB: u32,
  offsetC: u32, alpha: f32, beta: f32, batchDivB: u32,
  rank: u32, offsetL: u32, offsetR: u32, scaleL: f32,
  moduleId: u32, threshold: u32, maskScale: f32, form: u32,
}

${set ? setBindings(v, set) : operandBindings(v, vectors)}
`;

/** One product's operands and output, and its uniforms `p`. */
function operandBindings(v: MatmulVariant, vectors: boolean): string {
  return /* wgsl */ `@group(0) @binding(0) var<storage, read> A: array<${vectors ? 'vec4f' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${vectors ? (v.halfB ? 'vec4<u32>' : 'vec4f') : v.halfB ? 'u32' : 'f32'}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${extraBindings(v, 3)}
${operandLoads(v, vectors)}`;
}

/**
 * A set's operand and output buffers (A0.., B0.., C0..), each product's uniforms in `params`, and loads from the
 * operands a product function is handed (never masked: a set's products are base products).
 */
function setBindings(v: MatmulVariant, set: SetLayout): string {
  const b = v.halfB ? 'u32' : 'f32';
  const buffers = [
    ...Array.from({ length: set.as }, (_, i) => `var<storage, read> A${i}: array<f32>;`),
    ...Array.from({ length: set.bs }, (_, i) => `var<storage, read> B${i}: array<${b}>;`),
    ...Array.from({ length: set.cs }, (_, i) => `var<storage, read_write> C${i}: array<f32>;`),
  ];
  return /* wgsl */ `struct Set { products: array<Params, ${set.products}> }
${buffers.map((decl, i) => `@group(0) @binding(${i}) ${decl}`).join('\n')}
${extraBindings(v, buffers.length, 'params: Set')}
fn loadA(A: ptr<storage, array<f32>, read>, i: u32) -> f32 { return A[i]; }
fn loadB(B: ptr<storage, array<${b}>, read>, i: u32) -> f32 { return ${v.halfB ? 'unpack2x16float(B[i >> 1u])[i & 1u]' : 'B[i]'}; }`;
}

/**
 * loadA(i) and loadB(i): the operands' element i as f32, through the dropout mask where the variant masks that
 * operand, B's fp16 widened; with `vectors`, vector i as vec4f (never masked: see usesVectorK), and fp16 B read by
 * the vector kernel itself.
 */
function operandLoads(v: MatmulVariant, vectors: boolean): string {
  if (vectors) {
    const loadA = 'fn loadA(i: u32) -> vec4f { return A[i]; }';
    return v.halfB ? loadA : `${loadA}\nfn loadB(i: u32) -> vec4f { return B[i]; }`;
  }
  const mask = (operand: 'a' | 'b', value: string, offset: string) =>
    v.maskedOperand === operand ? `masked(${value}, i - ${offset})` : value;
  const b = v.halfB ? 'unpack2x16float(B[i >> 1u])[i & 1u]' : 'B[i]';
  return `fn loadA(i: u32) -> f32 { return ${mask('a', 'A[i]', 'p.offsetA')}; }
fn loadB(i: u32) -> f32 { return ${mask('b', b, 'p.offsetB')}; }`;
}

/** A register kernel's entry: the block of C at (row0, col0) of batch entry b this invocation owns, if inside C. */
const blockEntry = (v: MatmulVariant) => /* wgsl */ `@compute @workgroup_size(${v.workgroupX}, ${v.workgroupY}, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * ${v.tileM}u;
  let col0 = gid.x * ${v.tileN}u;
  let b = gid.z;
  if (row0 >= p.M || col0 >= p.N || b >= p.batch) { return; }`;

/**
 * The low-rank term into the block's sums, when the variant has one: per step t along the rank, the block's rows
 * of L and columns of op(R) loaded once each (clamped like the operands) and multiplied out in registers.
 */
function lowRankTerm(v: MatmulVariant, vecN: number, rowStride: string, colStride: string): string {
  if (!v.lowRank) return '';
  const rIndex = (col: string) => (v.transB ? `${col} * p.rank + t` : `t * p.N + ${col}`);
  const loadL = Array.from(
    { length: v.tileM },
    (_, i) => `    let l${i} = p.scaleL * L[p.offsetL + min(row0 + ${i}u * ${rowStride}, p.M - 1u) * p.rank + t];`,
  ).join('\n');
  const loadR = Array.from({ length: vecN }, (_, j) => {
    const col = (l: number) => `min(col0 + ${4 * j + l}u * ${colStride}, p.N - 1u)`;
    const lanes = [0, 1, 2, 3].map((l) => `R[p.offsetR + ${rIndex(col(l))}]`).join(', ');
    return `    let rv${j} = vec4f(${lanes});`;
  }).join('\n');
  // A masked term keeps its own sums, which the store scales element by element.
  const into = v.maskedLowRank ? 'low' : 'acc';
  const fma = Array.from({ length: v.tileM }, (_, i) =>
    Array.from({ length: vecN }, (_, j) => `    ${into}[${i * vecN + j}] += l${i} * rv${j};`).join('\n'),
  ).join('\n');
  return /* wgsl */ `${v.maskedLowRank ? `\n  var low: array<vec4f, ${v.tileM * vecN}>;` : ''}
  for (var t = 0u; t < p.rank; t++) {
${loadL}
${loadR}
${fma}
  }`;
}

/**
 * Writes alpha * acc (+ a masked low-rank term's sums, each scaled by its element's mask) (+ beta * C) for the block
 * at (row0, col0), skipping what lies outside C.
 */
function storeBlock(v: MatmulVariant, vecN: number, rowStride: string, colStride: string, set = false): string {
  const masked = v.maskedLowRank ? ` + maskFactor(${set ? 'p, ' : ''}row * p.N + col) * low[k][j % 4u]` : '';
  return /* wgsl */ `${lowRankTerm(v, vecN, rowStride, colStride)}
  for (var i = 0u; i < ${v.tileM}u; i++) {
    let row = row0 + i * ${rowStride};
    if (row >= p.M) { break; }
    for (var j = 0u; j < ${v.tileN}u; j++) {
      let col = col0 + j * ${colStride};
      if (col >= p.N) { continue; }
      let at = cBase + row * p.ldc + col;
      let k = i * ${vecN}u + j / 4u;
      var value = p.alpha * (acc[k][j % 4u]${masked});
      if (p.beta != 0.0) { value += p.beta * C[at]; }
      C[at] = value;
    }
  }`;
}

function registersShader(v: MatmulVariant): string {
  if (v.tileN % 4 !== 0) throw new Error(`matmul tileN must be a multiple of 4, got ${v.tileN}`);
  const vecN = v.tileN / 4;
  // Index of op(A)[m, k] and op(B)[k, n] in storage, relative to the batch's base offset.
  const aIndex = (m: string, k: string) => (v.transA ? `${k} * p.lda + ${m}` : `${m} * p.lda + ${k}`);
  const bIndex = (k: string, n: string) => (v.transB ? `${n} * p.ldb + ${k}` : `${k} * p.ldb + ${n}`);

  const loadA = Array.from(
    { length: v.tileM },
    (_, i) => `    let a${i} = loadA(aBase + ${aIndex(`r${i}`, 'k')});`,
  ).join('\n');
  const loadB = Array.from({ length: vecN }, (_, j) => {
    const lanes = [0, 1, 2, 3].map((l) => `loadB(bBase + ${bIndex('k', `c${4 * j + l}`)})`).join(', ');
    return `    let b${j} = vec4f(${lanes});`;
  }).join('\n');
  const fma = Array.from({ length: v.tileM }, (_, i) =>
    Array.from({ length: vecN }, (_, j) => `    acc[${i * vecN + j}] += a${i} * b${j};`).join('\n'),
  ).join('\n');
  const rows = Array.from({ length: v.tileM }, (_, i) => `  let r${i} = min(row0 + ${i}u, p.M - 1u);`).join('\n');
  const cols = Array.from({ length: v.tileN }, (_, c) => `  let c${c} = min(col0 + ${c}u, p.N - 1u);`).join('\n');

  return /* wgsl */ `
${header(v)}
${blockEntry(v)}
  let aBase = p.offsetA + b * p.strideA;
  let bBase = p.offsetB + (b / p.batchDivB) * p.strideB;
  let cBase = p.offsetC + b * p.strideC;
${rows}
${cols}
  var acc: array<vec4f, ${v.tileM * vecN}>;
  for (var k = 0u; k < p.K; k++) {
${loadA}
${loadB}
${fma}
  }
${storeBlock(v, vecN, '1u', '1u')}
}
`;
}

/** The registers family for x·Wᵀ with both operands read along K as vectors (`vectorK`). */
function vectorKShader(v: MatmulVariant): string {
  if (v.tileN % 4 !== 0) throw new Error(`matmul tileN must be a multiple of 4, got ${v.tileN}`);
  const vecN = v.tileN / 4;
  const rows = Array.from({ length: v.tileM }, (_, i) => i);
  const cols = Array.from({ length: v.tileN }, (_, c) => c);
  // Per step along K: one vec4 of each A row and of each B row, or with fp16 B, eight halves (one vec4<u32>)
  // against two vec4 of A.
  const perStep = v.halfB ? 8 : 4;
  const loadA = rows
    .map((i) =>
      v.halfB
        ? `    let a${i} = loadA(ar${i} + 2u * k);\n    let a${i}h = loadA(ar${i} + 2u * k + 1u);`
        : `    let a${i} = loadA(ar${i} + k);`,
    )
    .join('\n');
  const loadB = cols
    .map((c) =>
      v.halfB
        ? `    let w${c} = B[br${c} + k];\n    let b${c} = vec4f(unpack2x16float(w${c}.x), unpack2x16float(w${c}.y));\n    let b${c}h = vec4f(unpack2x16float(w${c}.z), unpack2x16float(w${c}.w));`
        : `    let b${c} = loadB(br${c} + k);`,
    )
    .join('\n');
  const dot = (i: number, c: number) => (v.halfB ? `dot(a${i}, b${c}) + dot(a${i}h, b${c}h)` : `dot(a${i}, b${c})`);
  const fma = rows
    .map((i) =>
      Array.from({ length: vecN }, (_, q) => {
        const lanes = [0, 1, 2, 3].map((l) => dot(i, 4 * q + l)).join(', ');
        return `    acc[${i * vecN + q}] += vec4f(${lanes});`;
      }).join('\n'),
    )
    .join('\n');
  return /* wgsl */ `
${header(v, true)}
${blockEntry(v)}
  // Offsets, strides and leading dimensions in vectors of A (4 floats) and of B (${perStep} values).
  let aBase = (p.offsetA + b * p.strideA) / 4u;
  let bBase = (p.offsetB + (b / p.batchDivB) * p.strideB) / ${perStep}u;
  let cBase = p.offsetC + b * p.strideC;
  let steps = p.K / ${perStep}u;
${rows.map((i) => `  let ar${i} = aBase + min(row0 + ${i}u, p.M - 1u) * (p.lda / 4u);`).join('\n')}
${cols.map((c) => `  let br${c} = bBase + min(col0 + ${c}u, p.N - 1u) * (p.ldb / ${perStep}u);`).join('\n')}
  var acc: array<vec4f, ${v.tileM * vecN}>;
  for (var k = 0u; k < steps; k++) {
${loadA}
${loadB}
${fma}
  }
${storeBlock(v, vecN, '1u', '1u')}
}
`;
}

/** Depth of the K slices the tiled family stages in workgroup memory. */
const TILE_K = 16;

function tiledShader(v: MatmulVariant, set?: SetLayout): string {
  const threads = v.workgroupX * v.workgroupY;
  const slices = v.kSlices ?? 1;
  const BM = v.workgroupY * v.tileM;
  const BN = v.workgroupX * v.tileN;
  const vecN = v.tileN / 4;
  const sums = v.tileM * vecN;
  if ((BM * TILE_K) % threads !== 0 || (BN * TILE_K) % threads !== 0) {
    throw new Error(
      `tiled matmul: ${BM}x${TILE_K} and ${BN}x${TILE_K} tiles must split evenly over ${threads} invocations`,
    );
  }
  // Workgroup memory: each slice's A tile, then each slice's B tile; after the K loop, slices 1.. hand their sums
  // to slice 0 through the same words.
  const tileWords = slices * (BM + BN) * TILE_K;
  const handWords = (slices - 1) * threads * sums * 4;
  if (handWords > tileWords) throw new Error(`tiled matmul: ${slices} K slices of ${BM}x${BN} do not fit`);
  const bTiles = slices * BM * TILE_K;
  const aIndex = (m: string, k: string) => (v.transA ? `${k} * p.lda + ${m}` : `${m} * p.lda + ${k}`);
  const bIndex = (n: string, k: string) => (v.transB ? `${n} * p.ldb + ${k}` : `${k} * p.ldb + ${n}`);
  // Each tile element e = sli + threads * i is mapped to (row-or-column, k) so that consecutive invocations read
  // consecutive addresses of the stored matrix: along k when k is the contiguous axis, along m (or n) otherwise.
  // Each round stages the elements fetched the round before, then fetches the next round's while it multiplies:
  // the loads' latency, which is what a short product waits on, overlaps the arithmetic. (Loops over an array:
  // unrolled, SwiftShader's compiler ran out of memory on the larger tiles.)
  const operand = (name: 'A' | 'B', size: number, contiguousK: boolean, limit: string) => {
    const x = name.toLowerCase();
    const count = (size * TILE_K) / threads;
    const index = name === 'A' ? aIndex : bIndex;
    const element = `let e = sli + i * ${threads}u;
      ${contiguousK ? `let k = e % ${TILE_K}u; let mn = e / ${TILE_K}u;` : `let mn = e % ${size}u; let k = e / ${size}u;`}`;
    return {
      declare: `  var ${x}Next: array<f32, ${count}>;`,
      fetch: `
    for (var i = 0u; i < ${count}u; i++) {
      ${element}
      let g = ${name === 'A' ? 'rowBase' : 'colBase'} + mn;
      let gk = kz + k;
      ${x}Next[i] = 0.0;
      if (g < ${limit} && gk < p.K) { ${x}Next[i] = load${name}(${set ? `${name}, ` : ''}${x}Base + ${index('g', 'gk')}); }
    }`,
      stage: `
    for (var i = 0u; i < ${count}u; i++) {
      ${element}
      tiles[${x}Tile + k * ${size}u + mn] = ${x}Next[i];
    }`,
    };
  };
  const a = operand('A', BM, !v.transA, 'p.M');
  const b = operand('B', BN, v.transB, 'p.N');
  // Invocation (x, y) owns rows y + WY * i and columns x + WX * j of the tile: neighbours read neighbouring
  // workgroup-memory words, which avoids bank conflicts.
  const fma = Array.from({ length: v.tileM }, (_, i) => {
    const aWord = `tiles[aTile + kk * ${BM}u + lid.y + ${i * v.workgroupY}u]`;
    return Array.from({ length: vecN }, (_, j) => {
      const lanes = [0, 1, 2, 3]
        .map((l) => `tiles[bTile + kk * ${BN}u + lid.x + ${(4 * j + l) * v.workgroupX}u]`)
        .join(', ');
      return `      acc[${i * vecN + j}] += ${aWord} * vec4f(${lanes});`;
    }).join('\n');
  }).join('\n');
  const handOver = /* wgsl */ `
  // Slices 1.. hand their sums to slice 0 (the K loop's last barrier freed the tiles), then leave.
  let hand = (lid.z - 1u) * ${threads}u + sli;
  if (lid.z > 0u) {
    for (var e = 0u; e < ${sums}u; e++) {
      let at = (hand * ${sums}u + e) * 4u;
      tiles[at] = acc[e].x; tiles[at + 1u] = acc[e].y; tiles[at + 2u] = acc[e].z; tiles[at + 3u] = acc[e].w;
    }
  }
  workgroupBarrier();
  if (lid.z > 0u) { return; }
  for (var z = 0u; z < ${slices - 1}u; z++) {
    for (var e = 0u; e < ${sums}u; e++) {
      let at = ((z * ${threads}u + sli) * ${sums}u + e) * 4u;
      acc[e] += vec4f(tiles[at], tiles[at + 1u], tiles[at + 2u], tiles[at + 3u]);
    }
  }`;
  const entry = `@compute @workgroup_size(${v.workgroupX}, ${v.workgroupY}, ${slices})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32)`;
  // A set's product is a function handed its operands; the entry picks it by the workgroup's z.
  const signature = set
    ? `fn product(A: ptr<storage, array<f32>, read>, B: ptr<storage, array<${v.halfB ? 'u32' : 'f32'}>, read>, C: ptr<storage, array<f32>, read_write>, p: Params, wg: vec3u, lid: vec3u, li: u32)`
    : entry;
  return /* wgsl */ `
${header(v, false, set)}
var<workgroup> tiles: array<f32, ${tileWords}>;

${signature} {
  let b = ${set ? '0u' : 'wg.z'};
  let rowBase = wg.y * ${BM}u;
  let colBase = wg.x * ${BN}u;
  let aBase = p.offsetA + b * p.strideA;
  let bBase = p.offsetB + (b / p.batchDivB) * p.strideB;
  let cBase = p.offsetC + b * p.strideC;
  // This invocation's index within its K slice, and the slice's tiles.
  let sli = li % ${threads}u;
  let aTile = lid.z * ${BM * TILE_K}u;
  let bTile = ${bTiles}u + lid.z * ${BN * TILE_K}u;
  var acc: array<vec4f, ${sums}>;
${a.declare}
${b.declare}
  var kz = lid.z * ${TILE_K}u;${a.fetch}${b.fetch}
  for (var k0 = 0u; k0 < p.K; k0 += ${slices * TILE_K}u) {${a.stage}${b.stage}
    workgroupBarrier();
    kz += ${slices * TILE_K}u;${a.fetch}${b.fetch}
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
${fma}
    }
    workgroupBarrier();
  }${slices > 1 ? handOver : ''}
  let row0 = rowBase + lid.y;
  let col0 = colBase + lid.x;
${storeBlock(v, vecN, `${v.workgroupY}u`, `${v.workgroupX}u`, Boolean(set))}
}
${set ? setEntry(entry, set, BM, BN) : ''}`;
}

/**
 * A set's entry: workgroup z runs product z, on the buffers its form names. The grid fits the set's largest
 * product, so workgroups past a smaller one's rows or columns leave at once.
 */
function setEntry(entry: string, set: SetLayout, BM: number, BN: number): string {
  const cases = set.forms.map((f, i) => `    case ${i}u: { product(&A${f.a}, &B${f.b}, &C${f.c}, p, wg, lid, li); }`);
  return /* wgsl */ `${entry} {
  let p = params.products[wg.z];
  if (wg.x * ${BN}u >= p.N || wg.y * ${BM}u >= p.M) { return; }
  switch p.form {
${cases.join('\n')}
    default: {}
  }
}`;
}

/** A compiled matmul variant; `op` records one multiplication for a plan. */
export class MatmulKernel {
  private readonly kernel: Kernel;
  /** With `vectorK`, the plain register kernel for shapes that do not split into whole vectors. */
  private readonly unaligned: Kernel | null;

  constructor(
    device: GPUDevice,
    readonly variant: MatmulVariant,
  ) {
    this.kernel = new Kernel(device, matmulShader(variant), matmulLabel(variant));
    const plain = { ...variant, vectorK: false };
    this.unaligned = usesVectorK(variant) ? new Kernel(device, matmulShader(plain), matmulLabel(plain)) : null;
  }

  /**
   * C ← alpha (op(A)·op(B) [+ lowRank's term]) + beta C, one operand through `operandMask`; `lowRank` and
   * `operandMask` exactly when the variant has them.
   */
  op(a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape, lowRank?: LowRank, operandMask?: OperandMask): Op {
    const s = resolveMatmulShape(shape, this.variant);
    const v = this.variant;
    checkLowRank(`matmul ${matmulLabel(v)}`, s, lowRank, v);
    checkOperandMask(`matmul ${matmulLabel(v)}`, operandMask, v);
    const kernel = this.unaligned && !vectorKFits(shape, v) ? this.unaligned : this.kernel;
    return kernel.op([a, b, c, ...extraBuffers(lowRank, operandMask)], matmulUniforms(s, lowRank, operandMask), [
      Math.ceil(s.N / (v.tileN * v.workgroupX)),
      Math.ceil(s.M / (v.tileM * v.workgroupY)),
      s.batch,
    ]);
  }
}

/** A product's Params, in the shader's order; in a set (matmul-set.ts), the last word names the product's form. */
export function matmulUniforms(
  s: ReturnType<typeof resolveMatmulShape>,
  lowRank?: LowRank,
  operandMask?: OperandMask,
  form = 0,
): UniformValue[] {
  return [
    ...[s.M, s.N, s.K, s.batch, s.lda, s.ldb, s.ldc, s.strideA, s.strideB, s.strideC].map(u32),
    ...[s.offsetA, s.offsetB, s.offsetC].map(u32),
    f32(s.alpha),
    f32(s.beta),
    u32(s.batchDivB),
    ...extraUniforms(lowRank, operandMask).slice(0, -1),
    u32(form),
  ];
}

/**
 * The low-rank term's uniforms (rank, offsets, scale), then its mask's or the operand mask's (module, threshold,
 * scale); zeros without.
 */
export function extraUniforms(lowRank: LowRank | undefined, operandMask?: OperandMask) {
  const mask = lowRank?.mask ?? operandMask;
  return [
    u32(lowRank?.rank ?? 0),
    u32(lowRank?.offsetL ?? 0),
    u32(lowRank?.offsetR ?? 0),
    f32(lowRank?.scale ?? 0),
    u32(mask?.module ?? 0),
    u32(mask ? dropoutThreshold(mask.p) : 0),
    f32(mask ? 1 / (1 - mask.p) : 0),
    u32(0),
  ];
}

/** What a low-rank term is, or what a variant was compiled for: none, plain, or with a dropout mask. */
function termKind(present: boolean, masked: boolean): string {
  return present ? (masked ? 'a masked low-rank term' : 'a low-rank term') : 'no low-rank term';
}

/**
 * A low-rank term must be what the kernel was compiled for (none, plain or masked), needs C's rows in order
 * (transA false, batch 1), and with a mask a dense C.
 */
export function checkLowRank(
  kernel: string,
  s: ReturnType<typeof resolveMatmulShape>,
  lowRank: LowRank | undefined,
  v: Pick<MatmulVariant, 'transA' | 'lowRank' | 'maskedLowRank'>,
): void {
  const compiled = termKind(Boolean(v.lowRank), Boolean(v.maskedLowRank));
  const given = termKind(Boolean(lowRank), Boolean(lowRank?.mask));
  if (compiled !== given) throw new Error(`${kernel} was compiled for ${compiled}, not ${given}`);
  if (lowRank && (v.transA || s.batch !== 1)) throw new Error('a low-rank term needs transA false and batch 1');
  if (lowRank?.mask && (s.ldc !== s.N || s.offsetC !== 0)) throw new Error('a masked low-rank term needs a dense C');
}

/** An operand mask must be what the kernel was compiled for, on an fp32 operand, and never with a low-rank term. */
export function checkOperandMask(
  kernel: string,
  mask: OperandMask | undefined,
  v: Pick<MatmulVariant, 'maskedOperand' | 'lowRank' | 'halfB'>,
): void {
  const name = (operand: 'a' | 'b' | undefined) => (operand ? `a mask on operand ${operand.toUpperCase()}` : 'no mask');
  if (v.maskedOperand !== mask?.operand) {
    throw new Error(`${kernel} was compiled for ${name(v.maskedOperand)}, not ${name(mask?.operand)}`);
  }
  if (v.maskedOperand && v.lowRank) throw new Error('an operand mask does not go with a low-rank term');
  if (v.maskedOperand === 'b' && v.halfB) throw new Error('a masked operand B must be fp32');
}

function matmulLabel(v: MatmulVariant): string {
  const family = v.tiled ? 'tiled' : 'registers';
  const vectors = usesVectorK(v) ? '_vk' : '';
  const lowRank = v.lowRank ? (v.maskedLowRank ? '_lrm' : '_lr') : '';
  const masked = v.maskedOperand ? `_m${v.maskedOperand}` : '';
  const slices = v.kSlices ? `x${v.kSlices}` : '';
  return `matmul_${family}_${v.transA ? 't' : 'n'}${v.transB ? 't' : 'n'}${v.halfB ? '_f16b' : ''}${vectors}${lowRank}${masked}_${v.tileM}x${v.tileN}_${v.workgroupX}x${v.workgroupY}${slices}`;
}
