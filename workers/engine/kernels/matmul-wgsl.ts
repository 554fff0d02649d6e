import { DROPOUT_FACTOR_WGSL, dropoutThreshold } from './dropout';
import type { LowRank, MatmulVariant, OperandMask, ResolvedShape, SetLayout } from './matmul';
import { dequantWgsl } from './quant';
import { uniformStruct } from './wgsl';

/** WGSL both matmul families share: the uniforms, bindings, operand loads, the low-rank term and the store. */

/** A low-rank term's uniforms, then its mask's or an operand mask's (split-k.ts's reduce declares them too). */
export const LOW_RANK_FIELDS = {
  rank: 'u32',
  offsetL: 'u32',
  offsetR: 'u32',
  scaleL: 'f32',
  moduleId: 'u32',
  threshold: 'u32',
  maskScale: 'f32',
} as const;

/** LOW_RANK_FIELDS' values; zeros without a term or a mask. */
export function lowRankUniforms(lowRank: LowRank | undefined, operandMask?: OperandMask) {
  const mask = lowRank?.mask ?? operandMask;
  return {
    rank: lowRank?.rank ?? 0,
    offsetL: lowRank?.offsetL ?? 0,
    offsetR: lowRank?.offsetR ?? 0,
    scaleL: lowRank?.scale ?? 0,
    moduleId: mask?.module ?? 0,
    threshold: mask ? dropoutThreshold(mask.p) : 0,
    maskScale: mask ? 1 / (1 - mask.p) : 0,
  };
}

/** `form`: in a set (matmul-set.ts), which of the set's forms the product runs. */
const PARAMS = uniformStruct({
  M: 'u32',
  N: 'u32',
  K: 'u32',
  batch: 'u32',
  lda: 'u32',
  ldb: 'u32',
  ldc: 'u32',
  strideA: 'u32',
  strideB: 'u32',
  strideC: 'u32',
  offsetA: 'u32',
  offsetB: 'u32',
  offsetC: 'u32',
  alpha: 'f32',
  beta: 'f32',
  batchDivB: 'u32',
  ...LOW_RANK_FIELDS,
  form: 'u32',
});

/** A product's Params. */
export function matmulUniforms(s: ResolvedShape, lowRank?: LowRank, operandMask?: OperandMask, form = 0) {
  return PARAMS.pack({ ...s, ...lowRankUniforms(lowRank, operandMask), form });
}

/**
 * Params and the bindings: A and B as scalars, or with `vectors` as vec4 (fp16 B as vec4<u32>, eight halves); a
 * set's buffers with `set`.
 */
export const header = (v: MatmulVariant, vectors = false, set?: SetLayout) => /* wgsl */ `
${PARAMS.wgsl}

${set ? setBindings(v, set) : operandBindings(v, vectors)}
`;

/** One product's operands and output, and its uniforms `p`. */
function operandBindings(v: MatmulVariant, vectors: boolean): string {
  return /* wgsl */ `@group(0) @binding(0) var<storage, read> A: array<${vectors ? 'vec4f' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${v.quantB ? 'u32' : vectors ? (v.halfB ? 'vec4<u32>' : 'vec4f') : v.halfB ? 'u32' : 'f32'}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${extraBindings(v, 3)}
${operandLoads(v, vectors)}`;
}

/**
 * A set's operands and outputs (A0.., B0.., C0..), each product's uniforms in `params`, and loads from the operands a
 * product function is handed (never masked: a set's products are base products).
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
 * loadA(i), loadB(i): element i as f32, through the variant's operand mask, fp16 B widened, quantized B dequantized
 * (W [N, K] for x·Wᵀ, [K, N] for dy·W); with `vectors`, vector i as vec4f (fp16 and quantized B are read by the
 * vector kernel itself).
 */
function operandLoads(v: MatmulVariant, vectors: boolean): string {
  if (vectors) {
    const loadA = 'fn loadA(i: u32) -> vec4f { return A[i]; }';
    if (v.quantB) return `${dequantWgsl(v.quantB, ['B'])}\n${loadA}`;
    return v.halfB ? loadA : `${loadA}\nfn loadB(i: u32) -> vec4f { return B[i]; }`;
  }
  const mask = (operand: 'a' | 'b', value: string, offset: string) =>
    v.maskedOperand === operand ? `masked(${value}, i - ${offset})` : value;
  const b = v.quantB
    ? `dequant_B(i, ${v.transB ? 'p.N, p.K' : 'p.K, p.N'})`
    : v.halfB
      ? 'unpack2x16float(B[i >> 1u])[i & 1u]'
      : 'B[i]';
  return `${v.quantB ? dequantWgsl(v.quantB, ['B']) : ''}
fn loadA(i: u32) -> f32 { return ${mask('a', 'A[i]', 'p.offsetA')}; }
fn loadB(i: u32) -> f32 { return ${mask('b', b, 'p.offsetB')}; }`;
}

/**
 * Bindings from `first` on: a low-rank term's L and R, a mask's dropout state, then the uniforms; with a mask,
 * `maskFactor(i)` (value i's dropout multiplier) and `masked(x, i)`.
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
  // In a set the product's uniforms are a parameter, not the module's p.
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

/** The buffers extraBindings binds: the low-rank term's, then the dropout state of its or an operand's mask. */
export function extraBuffers(lowRank: LowRank | undefined, operandMask?: OperandMask): GPUBuffer[] {
  const state = lowRank?.mask?.state ?? operandMask?.state;
  return [...(lowRank ? [lowRank.l, lowRank.r] : []), ...(state ? [state] : [])];
}

/**
 * acc (or a masked term's own `low`) += scale · L[rows] · op(R)[:, cols], per step t along the rank; rows and
 * columns clamped like the operands.
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
 * C[row, col] = alpha · (acc + maskFactor · low) + beta · C for the block at (row0, col0), rows and columns
 * `rowStride` and `colStride` apart, skipping what lies outside C.
 */
export function storeBlock(v: MatmulVariant, vecN: number, rowStride: string, colStride: string, set = false): string {
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
