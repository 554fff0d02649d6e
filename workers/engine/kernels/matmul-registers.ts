import type { MatmulVariant } from './matmul';
import { header, storeBlock } from './matmul-wgsl';

/**
 * The registers family (CPU adapters): each invocation computes a tileM x tileN block of C in registers, reading A
 * and B straight from storage, rows and columns past C's edge clamped on load and skipped on store.
 */

/**
 * Whether the variant reads along K in vectors (`vectorK`: x·Wᵀ only). Not through an operand mask: a hash per lane,
 * unrolled, took SwiftShader minutes to compile; nor a quantized B, read by element.
 */
export function usesVectorK(v: MatmulVariant): boolean {
  return Boolean(v.vectorK && !v.tiled && v.transB && !v.transA && !v.maskedOperand && !v.quantB);
}

export function registersShader(v: MatmulVariant): string {
  return usesVectorK(v) ? vectorKShader(v) : scalarShader(v);
}

/** The block of C at (row0, col0) of batch entry b this invocation owns, if inside C. */
const blockEntry = (v: MatmulVariant) => /* wgsl */ `@compute @workgroup_size(${v.workgroupX}, ${v.workgroupY}, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * ${v.tileM}u;
  let col0 = gid.x * ${v.tileN}u;
  let b = gid.z;
  if (row0 >= p.M || col0 >= p.N || b >= p.batch) { return; }`;

function checkTileN(v: MatmulVariant): number {
  if (v.tileN % 4 !== 0) throw new Error(`matmul tileN must be a multiple of 4, got ${v.tileN}`);
  return v.tileN / 4;
}

/** acc[i][j] += op(A)[r_i, k] · op(B)[k, c_j], one k at a time, any layout. */
function scalarShader(v: MatmulVariant): string {
  const vecN = checkTileN(v);
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

/**
 * x·Wᵀ: acc[i][j] += dot(A row r_i, B row c_j) over vectors along K, 4 floats (or 8 halves of B against two vec4
 * of A) a step; a quarter of the loads, which a software adapter pays for one by one.
 */
function vectorKShader(v: MatmulVariant): string {
  const vecN = checkTileN(v);
  const rows = Array.from({ length: v.tileM }, (_, i) => i);
  const cols = Array.from({ length: v.tileN }, (_, c) => c);
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
