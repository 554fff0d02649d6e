import type { MatmulVariant, SetLayout } from './matmul';
import { header, storeBlock } from './matmul-wgsl';

/**
 * The tiled family (GPUs): the workgroup stages TILE_K-deep slices of its A and B tiles in workgroup memory, loaded so
 * that neighbouring invocations read neighbouring addresses whatever the layout, then each invocation computes its
 * tileM x tileN block from there; rows and columns past C's edge are zero-filled on load and skipped on store.
 * With `kSlices`, that many slices of the workgroup walk K apart and add their sums through workgroup memory.
 * With a `SetLayout`, one dispatch runs a set of products, workgroup z product z (matmul-set.ts).
 */

/** Depth of the K slices the tiled family stages in workgroup memory. */
const TILE_K = 16;

/** The variant's shader; with `set`, a product function and an entry running product z on workgroup z. */
export function tiledShader(v: MatmulVariant, set?: SetLayout): string {
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
  // Tile element e = sli + threads · i is (m or n, k) with consecutive invocations on consecutive stored addresses.
  // Each round stages what the round before fetched and fetches the next while it multiplies, so a short product's
  // load latency overlaps its arithmetic (loops, not unrolled: SwiftShader's compiler ran out of memory).
  const operand = (name: 'A' | 'B', size: number, contiguousK: boolean, limit: string) => {
    const x = name.toLowerCase();
    const count = (size * TILE_K) / threads;
    const index = name === 'A' ? aIndex : bIndex;
    // A quantized W by its row and column: (n, k) for x·Wᵀ, (k, n) for dy·W, from its first row.
    const quant = name === 'B' && v.quantB;
    const load = quant
      ? `dequantAt_B(rowB + ${v.transB ? 'g, gk, p.N, p.K' : 'gk, g, p.K, p.N'})`
      : `load${name}(${set ? `${name}, ` : ''}${x}Base + ${index('g', 'gk')})`;
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
      if (g < ${limit} && gk < p.K) { ${x}Next[i] = ${load}; }
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
  let cBase = p.offsetC + b * p.strideC;${v.quantB ? `\n  // W's first row (a q8 W may start at a whole row).\n  let rowB = p.offsetB / ${v.transB ? 'p.K' : 'p.N'};` : ''}
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
