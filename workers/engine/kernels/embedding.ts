import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { type MatrixFormat, quantOf } from './matmul';
import { dequantWgsl } from './quant';
import { uniformStruct } from './wgsl';

/**
 * Token embedding over a vocabulary in chunks (a buffer each, under the device's largest storage binding):
 *   table chunk [chunkRows, dim]: vocabulary rows [first, first + chunkRows)
 *   forward   x[t, :] = scale · table[tokens[t], :]  (each chunk writes the tokens it holds; scale: Gemma's √d)
 *   backward  dTable[v, :] += scale · Σ_{t: tokens[t] = v} dx[t, :]  (full-parameter training only)
 * The backward reads a token index built on the CPU (`buildTokenIndex`): a row per invocation, no atomics.
 */
const PARAMS = uniformStruct({ tokens: 'u32', dim: 'u32', first: 'u32', chunkRows: 'u32', scale: 'f32' });

/** The gather from a table stored in `format`: fp32, fp16 pairs (GpuWeights' halfMatrices), or quantized rows. */
function forwardShader(format: MatrixFormat): string {
  const quant = quantOf(format);
  const read = quant
    ? 'dequant_table(at, p.chunkRows, p.dim)'
    : format === 'f16'
      ? 'unpack2x16float(table[at >> 1u])[at & 1u]'
      : 'table[at]';
  return /* wgsl */ `
${PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<${format === 'f32' ? 'f32' : 'u32'}>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${quant ? dequantWgsl(quant, ['table']) : ''}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let row = ids[t] - p.first;  // wraps around for ids below the chunk, so one comparison suffices
  let at = row * p.dim + i % p.dim;
  if (row < p.chunkRows) { x[i] = ${read} * p.scale; }
}
`;
}

const backwardShader = /* wgsl */ `
${PARAMS.wgsl}
// index = [distinct count U, ids[tokens], starts[tokens + 1], positions[tokens]]
@group(0) @binding(0) var<storage, read> index: array<u32>;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read_write> dTable: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let u = i / p.dim;
  if (u >= index[0]) { return; }
  let row = index[1u + u] - p.first;
  if (row >= p.chunkRows) { return; }
  let j = i % p.dim;
  let starts = 1u + p.tokens;
  let positions = starts + p.tokens + 1u;
  var s = 0.0;
  for (var k = index[starts + u]; k < index[starts + u + 1u]; k++) { s += dx[index[positions + k] * p.dim + j]; }
  dTable[row * p.dim + j] += s * p.scale;
}
`;

/** The CSR index of a batch's tokens the backward reads: distinct ids and, for each, the positions holding it. */
export function buildTokenIndex(tokens: ArrayLike<number>): Uint32Array<ArrayBuffer> {
  const n = tokens.length;
  const byId = new Map<number, number[]>();
  for (let t = 0; t < n; t++) {
    const list = byId.get(tokens[t]);
    if (list) list.push(t);
    else byId.set(tokens[t], [t]);
  }
  const index = new Uint32Array(1 + n + (n + 1) + n);
  index[0] = byId.size;
  let u = 0;
  let k = 0;
  for (const [id, positions] of byId) {
    index[1 + u] = id;
    index[1 + n + u] = k;
    for (const t of positions) index[1 + n + (n + 1) + k++] = t;
    u++;
  }
  index[1 + n + u] = k;
  return index;
}

/** Tokens, width, the chunk's vocabulary rows [first, first + rows), and the rows' scale (1 unless given). */
export interface EmbeddingShape {
  tokens: number;
  dim: number;
  first: number;
  rows: number;
  scale?: number;
}

export class EmbeddingKernels {
  /** The gathers, compiled on first use by table format. */
  private readonly forwards = new Map<MatrixFormat, Kernel>();
  private readonly backward: Kernel;

  constructor(private readonly device: GPUDevice) {
    this.backward = new Kernel(device, backwardShader, 'embedding_backward');
  }

  /**
   * x [tokens, dim] ← the rows of `chunk` (vocabulary rows [first, first + rows), stored in `format`: fp32 by
   * default; a quantized chunk is a whole [rows, dim] matrix) of ids.
   */
  forwardOp(o: { ids: GPUBuffer; chunk: GPUBuffer; x: GPUBuffer; format?: MatrixFormat } & EmbeddingShape): Op {
    const { tokens, dim, first, rows, scale = 1, format = 'f32' } = o;
    let kernel = this.forwards.get(format);
    if (!kernel) {
      kernel = new Kernel(
        this.device,
        forwardShader(format),
        `embedding_forward${format === 'f32' ? '' : `_${format}`}`,
      );
      this.forwards.set(format, kernel);
    }
    const uniforms = PARAMS.pack({ tokens, dim, first, chunkRows: rows, scale });
    return kernel.op([o.ids, o.chunk, o.x], uniforms, grid1d(tokens * dim, 64));
  }

  /** dChunk [rows, dim] += Σ dx over the positions of each of its ids, read from the batch's `index`. */
  backwardOp(o: { index: GPUBuffer; dx: GPUBuffer; dChunk: GPUBuffer } & EmbeddingShape): Op {
    const { tokens, dim, first, rows, scale = 1 } = o;
    const uniforms = PARAMS.pack({ tokens, dim, first, chunkRows: rows, scale });
    return this.backward.op([o.index, o.dx, o.dChunk], uniforms, grid1d(tokens * dim, 64));
  }
}
