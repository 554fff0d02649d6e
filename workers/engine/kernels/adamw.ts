import { f32, grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * AdamW with global gradient-norm clipping, on fp32 master weights.
 *   sumSquares: the partial sums of g^2 over one gradient buffer, into its slot of `partial`
 *               (PARTIALS_PER_BUFFER floats per slot)
 *   clipScale:  scale[0] = min(1, maxNorm / (sqrt(sum of slots) + 1e-6)); norm[1] = the unclipped norm
 *   step (per element):  g = grad * scale; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
 *                        p -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weightDecay * p)
 * Weight decay is decoupled (applied to p directly, as torch.optim.AdamW does: p *= 1 - lr * wd, then the Adam step).
 */
const WG = 256;

/** Workgroups (and so partial sums) per gradient buffer: enough to spread a large buffer over a GPU. */
export const PARTIALS_PER_BUFFER = 64;

const sumSquaresShader = /* wgsl */ `
struct Params { n: u32, slot: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> sums: array<f32, ${WG}>;

// ${PARTIALS_PER_BUFFER} workgroups stride over the buffer; each writes its own partial sum, so the total is
// deterministic (no atomics, fixed order).
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3u) {
  var s = 0.0;
  for (var i = wg.x * ${WG}u + li; i < p.n; i += ${WG * PARTIALS_PER_BUFFER}u) { s += g[i] * g[i]; }
  sums[li] = s;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride >>= 1u) {
    if (li < stride) { sums[li] += sums[li + stride]; }
    workgroupBarrier();
  }
  if (li == 0u) { partial[p.slot * ${PARTIALS_PER_BUFFER}u + wg.x] = sums[0]; }
}
`;

const clipShader = /* wgsl */ `
struct Params { slots: u32, maxNorm: f32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> clip: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0u; i < p.slots * ${PARTIALS_PER_BUFFER}u; i++) { s += partial[i]; }
  let norm = sqrt(s);
  clip[0] = select(1.0, min(1.0, p.maxNorm / (norm + 1e-6)), p.maxNorm > 0.0);
  clip[1] = norm;
}
`;

const stepShader = /* wgsl */ `
struct Hyper { lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bias1: f32, bias2: f32, _pad: f32 }
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<uniform> h: Hyper;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let g = grad[i] * clip[0];
  let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
  let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let decayed = param[i] * (1.0 - h.lr * h.weightDecay);
  param[i] = decayed - h.lr * (mi / h.bias1) / (sqrt(vi / h.bias2) + h.eps);
}
`;

export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamWKernels {
  private readonly sumSquares: Kernel;
  private readonly clip: Kernel;
  private readonly step: Kernel;

  constructor(private readonly device: GPUDevice) {
    this.sumSquares = new Kernel(device, sumSquaresShader, 'grad_sum_squares');
    this.clip = new Kernel(device, clipShader, 'grad_clip_scale');
    this.step = new Kernel(device, stepShader, 'adamw_step');
  }

  sumSquaresOp(grad: GPUBuffer, n: number, partial: GPUBuffer, slot: number): Op {
    return this.sumSquares.op([grad, partial], [u32(n), u32(slot), u32(0), u32(0)], [PARTIALS_PER_BUFFER, 1, 1]);
  }

  /** clip[0] = scale applied to gradients (1 when maxNorm <= 0: no clipping), clip[1] = the global norm. */
  clipOp(partial: GPUBuffer, slots: number, clip: GPUBuffer, maxNorm: number): Op {
    return this.clip.op([partial, clip], [u32(slots), f32(maxNorm), u32(0), u32(0)], [1, 1, 1]);
  }

  /**
   * A uniform buffer for the step's hyperparameters, shared by every parameter buffer's step op and rewritten
   * each step (learning-rate schedule, bias correction) so the recorded ops never change.
   */
  createHyper(): GPUBuffer {
    return this.device.createBuffer({
      size: 32,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'adamw hyper',
    });
  }

  /** Writes the hyperparameters of the 1-based step `step`. */
  writeHyper(hyper: GPUBuffer, s: AdamWSettings, step: number): void {
    const values = [s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, 1 - s.beta1 ** step, 1 - s.beta2 ** step, 0];
    this.device.queue.writeBuffer(hyper, 0, Float32Array.from(values));
  }

  /** One AdamW update of `param` (n elements) with the hyperparameters in `hyper`. */
  stepOp(
    param: GPUBuffer,
    grad: GPUBuffer,
    m: GPUBuffer,
    v: GPUBuffer,
    clip: GPUBuffer,
    hyper: GPUBuffer,
    n: number,
  ): Op {
    return this.step.op([param, grad, m, v, clip, hyper], [u32(n), u32(0), u32(0), u32(0)], grid1d(n, 64));
  }
}
