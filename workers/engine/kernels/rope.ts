import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * Rotary embeddings (Hugging Face's rotate_half convention), in the rows layout the projections and attention use.
 *   x, y: [batch * seq, heads * headDim]
 *   cos, sin: [seq, headDim / 2], angle = position * inv_freq[i]
 * Rotation of the pair (i, i + half): y_i = x_i cos - s x_{i+half} sin, y_{i+half} = x_{i+half} cos + s x_i sin,
 * with s = +1 forward and -1 for the backward (the transpose of a rotation is the rotation by minus the angle).
 */
export type Rotation = 'forward' | 'inverse';

/**
 * `partner(n)`: the element half a head from n; `rotated(...)`: x_n cos - x_partner sin in a head's first half,
 * x_n cos + x_partner sin in its second, at table entry `at`, sin's sign flipped for the inverse.
 */
const ROTATE_HALF_WGSL = /* wgsl */ `
fn partner(n: u32) -> u32 {
  let half = p.headDim / 2u;
  return select(n - half, n + half, n % p.headDim < half);
}

fn rotated(x: f32, xPartner: f32, n: u32, at: u32, sign: f32) -> f32 {
  let first = n % p.headDim < p.headDim / 2u;
  return x * cosTable[at] + select(1.0, -1.0, first) * sign * xPartner * sinTable[at];
}`;

const PARAMS = uniformStruct({ batch: 'u32', seq: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', sign: 'i32' });

// Invocations [0, queries) rotate q, the rest k; one dispatch for both.
const shader = /* wgsl */ `
${PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> cosTable: array<f32>;
@group(0) @binding(3) var<storage, read> sinTable: array<f32>;
@group(0) @binding(4) var<storage, read_write> qOut: array<f32>;
@group(0) @binding(5) var<storage, read_write> kOut: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

${ROTATE_HALF_WGSL}

// The table entry of element n of a tensor with this many heads per position: its position's, its pair's.
fn tableAt(n: u32, heads: u32) -> u32 {
  let half = p.headDim / 2u;
  let t = (n / (p.headDim * heads)) % p.seq;
  return t * half + n % p.headDim % half;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * 64u;
  let tokens = p.batch * p.seq;
  let queries = tokens * p.heads * p.headDim;
  let sign = f32(p.sign);
  if (n < queries) {
    qOut[n] = rotated(q[n], q[partner(n)], n, tableAt(n, p.heads), sign);
  } else if (n < queries + tokens * p.kvHeads * p.headDim) {
    let m = n - queries;
    kOut[m] = rotated(k[m], k[partner(m)], m, tableAt(m, p.kvHeads), sign);
  }
}
`;

export interface RopeShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
}

/** The rotation, queries and keys (each x into y) and the cos/sin tables [seq, headDim / 2]. */
export interface RopeIo {
  rotation: Rotation;
  q: { x: GPUBuffer; y: GPUBuffer };
  k: { x: GPUBuffer; y: GPUBuffer };
  cos: GPUBuffer;
  sin: GPUBuffer;
}

export class RopeKernels {
  private readonly kernel: Kernel;

  constructor(device: GPUDevice) {
    this.kernel = new Kernel(device, shader, 'rope');
  }

  /** q.y, k.y ← the queries (s.heads heads) and keys (s.kvHeads) of the same positions, x rotated, in one dispatch. */
  op({ rotation, q, k, cos, sin }: RopeIo, s: RopeShape & { kvHeads: number }): Op {
    const n = s.batch * s.seq * (s.heads + s.kvHeads) * s.headDim;
    const { batch, seq, heads, kvHeads, headDim } = s;
    const sign = rotation === 'forward' ? 1 : -1;
    const uniforms = PARAMS.pack({ batch, seq, heads, kvHeads, headDim, sign });
    return this.kernel.op([q.x, k.x, cos, sin, q.y, k.y], uniforms, grid1d(n, 64));
  }
}
