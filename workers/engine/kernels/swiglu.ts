import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * SwiGLU, elementwise over [tokens, intermediate]:
 *   forward   a = silu(g) * u,  silu(g) = g * sigmoid(g)
 *   backward  dg = da * u * sigmoid(g) * (1 + g * (1 - sigmoid(g))),  du = da * silu(g)
 * da may come as partial sums [slabs, n], added as they are read: down_proj's input gradient left unreduced
 * (matmul-set.ts), which spares split-K's reduce pass its own dispatch.
 */
const FORWARD_PARAMS = uniformStruct({ n: 'u32' });
const BACKWARD_PARAMS = uniformStruct({ n: 'u32', slabs: 'u32' });

const forwardShader = /* wgsl */ `
${FORWARD_PARAMS.wgsl}
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
${BACKWARD_PARAMS.wgsl}
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

export interface SwiGluBackward {
  gate: GPUBuffer;
  up: GPUBuffer;
  dact: GPUBuffer;
  dactSlabs?: number;
  dgate: GPUBuffer;
  dup: GPUBuffer;
  n: number;
}

export class SwiGluKernels {
  private readonly forward: Kernel;
  private readonly backward: Kernel;

  constructor(device: GPUDevice) {
    this.forward = new Kernel(device, forwardShader, 'swiglu_forward');
    this.backward = new Kernel(device, backwardShader, 'swiglu_backward');
  }

  /** act [n] = silu(gate) · up. */
  forwardOp({ gate, up, act, n }: { gate: GPUBuffer; up: GPUBuffer; act: GPUBuffer; n: number }): Op {
    return this.forward.op([gate, up, act], FORWARD_PARAMS.pack({ n }), grid1d(n, 64));
  }

  /** dgate, dup [n] from dact, in `dactSlabs` partial sums (1: dact itself). */
  backwardOp(o: SwiGluBackward): Op {
    const { gate, up, dact, dgate, dup, n } = o;
    return this.backward.op(
      [gate, up, dact, dgate, dup],
      BACKWARD_PARAMS.pack({ n, slabs: o.dactSlabs ?? 1 }),
      grid1d(n, 64),
    );
  }
}
