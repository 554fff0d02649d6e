import { f32, grid1d, Kernel, type UniformValue, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { type RowLayout, rowKernel } from './wgsl';

/**
 * RMSNorm over rows: y[r, :] = w * x[r, :] * rstd[r], rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps).
 *   x, y: [rows, dim]   w: [dim]   rstd: [rows] (saved for the backward)
 * Backward, with xhat = x * rstd and g = dy * w (dy possibly as partial sums, added as read):
 *   dx = rstd * (g - xhat * mean(g * xhat))          (written, or added to dx when accumulating)
 *   dw += sum over rows of dy * xhat                  (full-parameter training only)
 * A workgroup per row reduces over dim, or an invocation per row (`RowLayout`); Qwen3's per-head q/k norm is the
 * same kernel with rows = tokens * heads.
 * The forward can also copy x to `carry` as it reads it: a transformer block's residual stream, which the block's
 * last product then adds onto. A copy of its own would end the compute pass (copies run outside passes).
 */

const WG = 64;

function forwardShader(layout: RowLayout, carry: boolean): string {
  const k = rowKernel(layout);
  return /* wgsl */ `
struct Params { rows: u32, dim: u32, eps: f32, _pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
${carry ? '@group(0) @binding(4) var<storage, read_write> carry: array<f32>;' : ''}
@group(0) @binding(${carry ? 5 : 4}) var<uniform> p: Params;
${k.reduce}
@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var s = 0.0;
  for (var j = li; j < p.dim; j += ${k.stride}) {
    let v = x[base + j];
    s += v * v;${carry ? '\n    carry[base + j] = v;' : ''}
  }
  let r = inverseSqrt(reduce(s, li, false) / f32(p.dim) + p.eps);
  for (var j = li; j < p.dim; j += ${k.stride}) { y[base + j] = x[base + j] * r * w[j]; }
  if (li == 0u) { rstd[row] = r; }
}
`;
}

function backwardShader(layout: RowLayout): string {
  const k = rowKernel(layout);
  return /* wgsl */ `
struct Params { rows: u32, dim: u32, accumulate: u32, slabs: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${k.reduce}
// dy's element i: the sum of its slabs.
fn dyAt(i: u32) -> f32 {
  var sum = dy[i];
  for (var slab = 1u; slab < p.slabs; slab++) { sum += dy[slab * p.rows * p.dim + i]; }
  return sum;
}

@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  let r = rstd[row];
  var s = 0.0;
  for (var j = li; j < p.dim; j += ${k.stride}) { s += dyAt(base + j) * w[j] * x[base + j] * r; }
  let meanGX = reduce(s, li, false) / f32(p.dim);
  for (var j = li; j < p.dim; j += ${k.stride}) {
    let xhat = x[base + j] * r;
    var value = r * (dyAt(base + j) * w[j] - xhat * meanGX);
    if (p.accumulate != 0u) { value += dx[base + j]; }
    dx[base + j] = value;
  }
}
`;
}

const weightGradShader = /* wgsl */ `
struct Params { rows: u32, dim: u32, _pad0: u32, _pad1: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rstd: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.dim) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.dim + j] * x[r * p.dim + j] * rstd[r]; }
  dw[j] += s;
}
`;

export class RmsNormKernels {
  private readonly forward: Kernel;
  private readonly forwardCarry: Kernel;
  private readonly backward: Kernel;
  private readonly weightGrad: Kernel;
  private readonly grid: (rows: number) => [number, number, number];

  constructor(device: GPUDevice, layout: RowLayout = 'cooperative') {
    this.forward = new Kernel(device, forwardShader(layout, false), 'rmsnorm_forward');
    this.forwardCarry = new Kernel(device, forwardShader(layout, true), 'rmsnorm_forward_carry');
    this.backward = new Kernel(device, backwardShader(layout), 'rmsnorm_backward');
    this.weightGrad = new Kernel(device, weightGradShader, 'rmsnorm_weight_grad');
    this.grid = rowKernel(layout).workgroups;
  }

  /** y and rstd from x; with `carry`, x copied there too. */
  forwardOp(
    x: GPUBuffer,
    w: GPUBuffer,
    y: GPUBuffer,
    rstd: GPUBuffer,
    rows: number,
    dim: number,
    eps: number,
    carry?: GPUBuffer,
  ): Op {
    const uniforms = [u32(rows), u32(dim), f32(eps), u32(0)];
    if (carry) return this.forwardCarry.op([x, w, y, rstd, carry], uniforms, this.grid(rows));
    return this.forward.op([x, w, y, rstd], uniforms, this.grid(rows));
  }

  /**
   * dx = d(loss)/dx, written, or added to what dx holds when `accumulate` (a residual stream's gradient). dy may
   * come as `dySlabs` partial sums [dySlabs, rows, dim], added as they are read: a sum of products' output left
   * unreduced (matmul-set.ts), which spares the reduce pass its own dispatch.
   */
  backwardOp(
    x: GPUBuffer,
    w: GPUBuffer,
    rstd: GPUBuffer,
    dy: GPUBuffer,
    dx: GPUBuffer,
    rows: number,
    dim: number,
    accumulate: boolean,
    dySlabs = 1,
  ): Op {
    const uniforms: UniformValue[] = [u32(rows), u32(dim), u32(accumulate ? 1 : 0), u32(dySlabs)];
    return this.backward.op([x, w, rstd, dy, dx], uniforms, this.grid(rows));
  }

  /** dw += sum over rows of dy * xhat. */
  weightGradOp(x: GPUBuffer, rstd: GPUBuffer, dy: GPUBuffer, dw: GPUBuffer, rows: number, dim: number): Op {
    return this.weightGrad.op([x, rstd, dy, dw], [u32(rows), u32(dim), u32(0), u32(0)], grid1d(dim, WG));
  }
}
