import type { MatmulVariant } from './matmul';
import { header, storeBlock } from './matmul-wgsl';
import { codesPerWord, type QuantFormat } from './quant';

/**
 * The registers family (CPU adapters): each invocation computes a tileM x tileN block of C in registers, reading A
 * and B straight from storage, rows and columns past C's edge clamped on load and skipped on store.
 */

/**
 * Whether the variant reads along K in vectors (`vectorK`: x·Wᵀ only). Not through an operand mask: a hash per lane,
 * unrolled, took SwiftShader minutes to compile.
 */
export function usesVectorK(v: MatmulVariant): boolean {
  return Boolean(v.vectorK && !v.tiled && v.transB && !v.transA && !v.maskedOperand);
}

export function registersShader(v: MatmulVariant): string {
  if (!usesVectorK(v)) return scalarShader(v);
  return v.quantB ? quantVectorKShader(v) : vectorKShader(v);
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
    if (v.quantB && !v.transB) {
      // dy·W: columns c..c + 3 of W's row k share a word of codes and a scale (c a multiple of 4, W's rows whole
      // groups), read once for the four.
      const at = `rowB + k, c${4 * j}, p.K, p.N`;
      const levels = codesPerWord(v.quantB) === 4 ? 'lv' : `lv[(c${4 * j} % 8u) / 4u]`;
      return `    let lv${j}w = B[codeWord_B(${at})];\n    let lv${j}s = scale_B(${at});\n    let b${j} = lv${j}s * ${levels.replace('lv', `levels_B(lv${j}w)`)};`;
    }
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
  let cBase = p.offsetC + b * p.strideC;${v.quantB && !v.transB ? "\n  // W's first row (a q8 W may start at a whole row).\n  let rowB = p.offsetB / p.N;" : ''}
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

/** acc[i][j] += `dot(i, c)` for the block's rows i and columns c, four columns a vec4. */
function dotBlock(v: MatmulVariant, vecN: number, dot: (i: number, c: number) => string): string {
  return Array.from({ length: v.tileM }, (_, i) =>
    Array.from({ length: vecN }, (_, q) => {
      const lanes = [0, 1, 2, 3].map((l) => dot(i, 4 * q + l)).join(', ');
      return `    acc[${i * vecN + q}] += vec4f(${lanes});`;
    }).join('\n'),
  ).join('\n');
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
  const fma = dotBlock(v, vecN, (i, c) => (v.halfB ? `dot(a${i}, b${c}) + dot(a${i}h, b${c}h)` : `dot(a${i}, b${c})`));
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

/**
 * x·Wᵀ over a quantized W: each step a word of codes of every column's W row (4 weights, or 8 of a 4-bit format)
 * against one or two vec4 of every A row, each column's dot products scaled once.
 */
function quantVectorKShader(v: MatmulVariant): string {
  const vecN = checkTileN(v);
  const perWord = codesPerWord(v.quantB as QuantFormat);
  const halves = perWord / 4;
  const rows = Array.from({ length: v.tileM }, (_, i) => i);
  const cols = Array.from({ length: v.tileN }, (_, c) => c);
  const loadA = rows
    .flatMap((i) =>
      Array.from({ length: halves }, (_, h) => `    let a${i}_${h} = loadA(ar${i} + s * ${halves}u + ${h}u);`),
    )
    .join('\n');
  const loadB = cols
    .map((c) => {
      const at = `q${c}, k, p.N, p.K`;
      return `    let d${c} = levels_B(B[codeWord_B(${at})]);\n    let s${c} = scale_B(${at});`;
    })
    .join('\n');
  const fma = dotBlock(
    v,
    vecN,
    (i, c) => `s${c} * ${halves === 1 ? `dot(d${c}, a${i}_0)` : `dotPair(d${c}, a${i}_0, a${i}_1)`}`,
  );
  return /* wgsl */ `
${header(v, true)}
${blockEntry(v)}
  let aBase = (p.offsetA + b * p.strideA) / 4u;
  let cBase = p.offsetC + b * p.strideC;
  let steps = p.K / ${perWord}u;
${rows.map((i) => `  let ar${i} = aBase + min(row0 + ${i}u, p.M - 1u) * (p.lda / 4u);`).join('\n')}
  // Each column's row of W (a q8 W may start at a whole row).
${cols.map((c) => `  let q${c} = p.offsetB / p.K + min(col0 + ${c}u, p.N - 1u);`).join('\n')}
  var acc: array<vec4f, ${v.tileM * vecN}>;
  for (var s = 0u; s < steps; s++) {
    let k = s * ${perWord}u;
${loadA}
${loadB}
${fma}
  }
${storeBlock(v, vecN, '1u', '1u')}
}
`;
}
