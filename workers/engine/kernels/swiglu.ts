import { grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * SwiGLU, elementwise over [tokens, intermediate]:
 *   forward   a = silu(g) * u,  silu(g) = g * sigmoid(g)
 *   backward  dg = da * u * sigmoid(g) * (1 + g * (1 - sigmoid(g))),  du = da * silu(g)
 * da may come as partial sums [slabs, n], added as they are read: down_proj's input gradient left unreduced
 * (matmul-set.ts), which spares split-K's reduce pass its own dispatch.
 */
const forwardShader = /* wgsl */ `
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let x = g[i];
  a[i] = x / (1.0 + exp(-x)) * u[i];
}
`;

const backwardShader = /* wgsl */ `
struct Params { n: u32, slabs: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> da: array<f32>;
@group(0) @binding(3) var<storage, read_write> dg: array<f32>;
@group(0) @binding(4) var<storage, read_write> du: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  var d = da[i];
  for (var slab = 1u; slab < p.slabs; slab++) { d += da[slab * p.n + i]; }
  let x = g[i];
  let sig = 1.0 / (1.0 + exp(-x));
  dg[i] = d * u[i] * sig * (1.0 + x * (1.0 - sig));
  du[i] = d * x * sig;
}
`;

export class SwiGluKernels {
  private readonly forward: Kernel;
  private readonly backward: Kernel;

  constructor(device: GPUDevice) {
    this.forward = new Kernel(device, forwardShader, 'swiglu_forward');
    this.backward = new Kernel(device, backwardShader, 'swiglu_backward');
  }

  forwardOp(g: GPUBuffer, u: GPUBuffer, a: GPUBuffer, n: number): Op {
    return this.forward.op([g, u, a], [u32(n), u32(0), u32(0), u32(0)], grid1d(n, 64));
  }

  /** dg and du from da, in `daSlabs` partial sums. */
  backwardOp(g: GPUBuffer, u: GPUBuffer, da: GPUBuffer, dg: GPUBuffer, du: GPUBuffer, n: number, daSlabs = 1): Op {
    return this.backward.op([g, u, da, dg, du], [u32(n), u32(daSlabs), u32(0), u32(0)], grid1d(n, 64));
  }
}
