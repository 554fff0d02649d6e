import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * The gated MLP's activation, elementwise over [tokens, intermediate]: SwiGLU (llama, qwen) or GeGLU with the tanh
 * GELU (Gemma):
 *   forward   a = act(g) * u;  silu(g) = g · sigmoid(g),  gelu(g) = g/2 · (1 + tanh(c (g + 0.044715 g³)))
 *   backward  dg = da * u * act'(g),  du = da * act(g)
 * da may come as partial sums [slabs, n], added as they are read: down_proj's input gradient left unreduced
 * (matmul-set.ts), which spares split-K's reduce pass its own dispatch.
 */
const FORWARD_PARAMS = uniformStruct({ n: 'u32' });
const BACKWARD_PARAMS = uniformStruct({ n: 'u32', slabs: 'u32' });

/** The gated MLP's activation. */
export type GatedActivation = 'silu' | 'gelu';

/**
 * WGSL for act(x) and act'(x) (`geluTanh`, `geluTanhDerivative`), the GELU's tanh argument clamped where tanh is
 * ±1 in f32 already (some drivers' tanh overflows to NaN past that).
 */
export const GELU_TANH_WGSL = /* wgsl */ `
fn geluTanhOf(x: f32) -> f32 { return tanh(clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0)); }
fn geluTanh(x: f32) -> f32 { return 0.5 * x * (1.0 + geluTanhOf(x)); }
fn geluTanhDerivative(x: f32) -> f32 {
  let t = geluTanhOf(x);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x);
}`;

/**
 * WGSL per activation: its functions, act(x) and the backward's dg, du of x = g[i], d = da[i] (summed slabs).
 */
const ACTIVATIONS: Record<GatedActivation, { functions: string; act: string; dg: string; du: string }> = {
  silu: {
    functions: 'fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }',
    act: 'x * sigmoid(x)',
    dg: 'd * u[i] * sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)))',
    du: 'd * x * sigmoid(x)',
  },
  gelu: {
    functions: GELU_TANH_WGSL,
    act: 'geluTanh(x)',
    dg: 'd * u[i] * geluTanhDerivative(x)',
    du: 'd * geluTanh(x)',
  },
};

function forwardShader(activation: GatedActivation): string {
  const a = ACTIVATIONS[activation];
  return /* wgsl */ `
${FORWARD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${a.functions}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let x = g[i];
  a[i] = ${a.act} * u[i];
}
`;
}

function backwardShader(activation: GatedActivation): string {
  const a = ACTIVATIONS[activation];
  return /* wgsl */ `
${BACKWARD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> da: array<f32>;
@group(0) @binding(3) var<storage, read_write> dg: array<f32>;
@group(0) @binding(4) var<storage, read_write> du: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${a.functions}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  var d = da[i];
  for (var slab = 1u; slab < p.slabs; slab++) { d += da[slab * p.n + i]; }
  let x = g[i];
  dg[i] = ${a.dg};
  du[i] = ${a.du};
}
`;
}

export interface SwiGluBackward {
  activation?: GatedActivation;
  gate: GPUBuffer;
  up: GPUBuffer;
  dact: GPUBuffer;
  dactSlabs?: number;
  dgate: GPUBuffer;
  dup: GPUBuffer;
  n: number;
}

export class SwiGluKernels {
  /** Each activation's kernels, compiled on first use. */
  private readonly kernels = new Map<string, Kernel>();

  constructor(private readonly device: GPUDevice) {}

  private kernel(activation: GatedActivation, pass: 'forward' | 'backward'): Kernel {
    const key = `${activation} ${pass}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const code = pass === 'forward' ? forwardShader(activation) : backwardShader(activation);
      kernel = new Kernel(this.device, code, `${activation === 'silu' ? 'swiglu' : 'geglu'}_${pass}`);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }

  /** act [n] = act(gate) · up (SiLU unless told). */
  forwardOp(o: { gate: GPUBuffer; up: GPUBuffer; act: GPUBuffer; n: number; activation?: GatedActivation }): Op {
    const { gate, up, act, n } = o;
    return this.kernel(o.activation ?? 'silu', 'forward').op(
      [gate, up, act],
      FORWARD_PARAMS.pack({ n }),
      grid1d(n, 64),
    );
  }

  /** dgate, dup [n] from dact, in `dactSlabs` partial sums (1: dact itself). */
  backwardOp(o: SwiGluBackward): Op {
    const { gate, up, dact, dgate, dup, n } = o;
    return this.kernel(o.activation ?? 'silu', 'backward').op(
      [gate, up, dact, dgate, dup],
      BACKWARD_PARAMS.pack({ n, slabs: o.dactSlabs ?? 1 }),
      grid1d(n, 64),
    );
  }
}
