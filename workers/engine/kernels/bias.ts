import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * A linear layer's bias (Qwen2's q/k/v projections), y [rows, dim], bias [dim]:
 *   forward   y[r, j] += bias[j]
 *   backward  dbias[j] += Σ_r dy[r, j]  (full-parameter training only)
 */
const PARAMS = uniformStruct({ rows: 'u32', dim: 'u32' });

const addShader = /* wgsl */ `
${PARAMS.wgsl}
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
${PARAMS.wgsl}
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

  /** y [rows, dim] += bias. */
  addOp({ bias, y, rows, dim }: { bias: GPUBuffer; y: GPUBuffer; rows: number; dim: number }): Op {
    return this.add.op([bias, y], PARAMS.pack({ rows, dim }), grid1d(rows * dim, 64));
  }

  /** dbias [dim] += Σ over rows of dy [rows, dim]. */
  gradOp({ dy, dbias, rows, dim }: { dy: GPUBuffer; dbias: GPUBuffer; rows: number; dim: number }): Op {
    return this.grad.op([dy, dbias], PARAMS.pack({ rows, dim }), grid1d(dim, 64));
  }
}
