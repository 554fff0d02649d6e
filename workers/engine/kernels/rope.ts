import { grid1d, i32, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * Rotary embeddings (Hugging Face's rotate_half convention) fused with the change of layout attention needs.
 *   rows layout:  [batch * seq, heads * headDim]   (what the projections produce and consume)
 *   heads layout: [batch, heads, seq, headDim]     (each head's [seq, headDim] matrix contiguous, for matmul)
 *   cos, sin: [seq, headDim / 2], angle = position * inv_freq[i]
 * Rotation of the pair (i, i + half): out_i = x_i cos - s x_{i+half} sin, out_{i+half} = x_{i+half} cos + s x_i sin,
 * with s = +1 forward, -1 for the backward (the transpose of a rotation is the rotation by minus the angle),
 * or no rotation at all (values and the attention output only change layout).
 */
export type RopeDirection = 'rowsToHeads' | 'headsToRows';
export type Rotation = 'forward' | 'inverse' | 'none';

function shader(direction: RopeDirection): string {
  // The output is enumerated in its own layout, so only the input needs an index function.
  const inIndex = direction === 'rowsToHeads' ? 'rowsIndex' : 'headsIndex';
  return /* wgsl */ `
struct Params { batch: u32, seq: u32, heads: u32, headDim: u32, sign: i32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cosTable: array<f32>;
@group(0) @binding(2) var<storage, read> sinTable: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn rowsIndex(b: u32, h: u32, t: u32, i: u32) -> u32 { return ((b * p.seq + t) * p.heads + h) * p.headDim + i; }
fn headsIndex(b: u32, h: u32, t: u32, i: u32) -> u32 { return ((b * p.heads + h) * p.seq + t) * p.headDim + i; }

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.batch * p.seq * p.heads * p.headDim) { return; }
  // n enumerates the output in its own layout; decode (b, h, t, i) from it.
  let i = n % p.headDim;
  var rest = n / p.headDim;
  var b: u32; var h: u32; var t: u32;
  ${
    direction === 'rowsToHeads'
      ? 't = rest % p.seq; rest /= p.seq; h = rest % p.heads; b = rest / p.heads;'
      : 'h = rest % p.heads; rest /= p.heads; t = rest % p.seq; b = rest / p.seq;'
  }
  let value = x[${inIndex}(b, h, t, i)];
  if (p.sign == 0) { y[n] = value; return; }
  let half = p.headDim / 2u;
  let k = i % half;
  let c = cosTable[t * half + k];
  let s = f32(p.sign) * sinTable[t * half + k];
  if (i < half) {
    y[n] = value * c - x[${inIndex}(b, h, t, i + half)] * s;
  } else {
    y[n] = value * c + x[${inIndex}(b, h, t, i - half)] * s;
  }
}
`;
}

export interface RopeShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
}

export class RopeKernels {
  private readonly kernels: Record<RopeDirection, Kernel>;

  constructor(device: GPUDevice) {
    this.kernels = {
      rowsToHeads: new Kernel(device, shader('rowsToHeads'), 'rope_rows_to_heads'),
      headsToRows: new Kernel(device, shader('headsToRows'), 'rope_heads_to_rows'),
    };
  }

  op(
    direction: RopeDirection,
    rotation: Rotation,
    x: GPUBuffer,
    cos: GPUBuffer,
    sin: GPUBuffer,
    y: GPUBuffer,
    s: RopeShape,
  ): Op {
    const sign = rotation === 'forward' ? 1 : rotation === 'inverse' ? -1 : 0;
    const n = s.batch * s.seq * s.heads * s.headDim;
    return this.kernels[direction].op(
      [x, cos, sin, y],
      [u32(s.batch), u32(s.seq), u32(s.heads), u32(s.headDim), i32(sign), u32(0), u32(0), u32(0)],
      grid1d(n, 64),
    );
  }
}
