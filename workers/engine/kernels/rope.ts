import { grid1d, i32, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * Rotary embeddings (Hugging Face's rotate_half convention), in the rows layout the projections and attention use.
 *   x, y: [batch * seq, heads * headDim]
 *   cos, sin: [seq, headDim / 2], angle = position * inv_freq[i]
 * Rotation of the pair (i, i + half): y_i = x_i cos - s x_{i+half} sin, y_{i+half} = x_{i+half} cos + s x_i sin,
 * with s = +1 forward and -1 for the backward (the transpose of a rotation is the rotation by minus the angle).
 */
export type Rotation = 'forward' | 'inverse';

const shader = /* wgsl */ `
struct Params { batch: u32, seq: u32, heads: u32, headDim: u32, sign: i32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cosTable: array<f32>;
@group(0) @binding(2) var<storage, read> sinTable: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.batch * p.seq * p.heads * p.headDim) { return; }
  let i = n % p.headDim;
  let t = (n / (p.headDim * p.heads)) % p.seq;
  let half = p.headDim / 2u;
  let k = i % half;
  let c = cosTable[t * half + k];
  let s = f32(p.sign) * sinTable[t * half + k];
  if (i < half) {
    y[n] = x[n] * c - x[n + half] * s;
  } else {
    y[n] = x[n] * c + x[n - half] * s;
  }
}
`;

export interface RopeShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
}

export class RopeKernels {
  private readonly kernel: Kernel;

  constructor(device: GPUDevice) {
    this.kernel = new Kernel(device, shader, 'rope');
  }

  op(rotation: Rotation, x: GPUBuffer, cos: GPUBuffer, sin: GPUBuffer, y: GPUBuffer, s: RopeShape): Op {
    const n = s.batch * s.seq * s.heads * s.headDim;
    return this.kernel.op(
      [x, cos, sin, y],
      [
        u32(s.batch),
        u32(s.seq),
        u32(s.heads),
        u32(s.headDim),
        i32(rotation === 'forward' ? 1 : -1),
        u32(0),
        u32(0),
        u32(0),
      ],
      grid1d(n, 64),
    );
  }
}
