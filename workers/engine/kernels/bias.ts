import { grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * Bias of a linear layer (Qwen2's q/k/v projections), over y: [rows, dim], bias: [dim]:
 *   forward   y[r, j] += bias[j]
 *   backward  dbias[j] += sum over rows of dy[r, j]      (full-parameter training only)
 */
const addShader = /* wgsl */ `
struct Params { rows: u32, dim: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> bias: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.rows * p.dim) { return; }
  y[i] += bias[i % p.dim];
}
`;

const gradShader = /* wgsl */ `
struct Params { rows: u32, dim: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.dim) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.dim + j]; }
  dbias[j] += s;
}
`;

export class BiasKernels {
  private readonly add: Kernel;
  private readonly grad: Kernel;

  constructor(device: GPUDevice) {
    this.add = new Kernel(device, addShader, 'bias_add');
    this.grad = new Kernel(device, gradShader, 'bias_grad');
  }

  addOp(bias: GPUBuffer, y: GPUBuffer, rows: number, dim: number): Op {
    return this.add.op([bias, y], [u32(rows), u32(dim), u32(0), u32(0)], grid1d(rows * dim, 64));
  }

  gradOp(dy: GPUBuffer, dbias: GPUBuffer, rows: number, dim: number): Op {
    return this.grad.op([dy, dbias], [u32(rows), u32(dim), u32(0), u32(0)], grid1d(dim, 64));
  }
}
