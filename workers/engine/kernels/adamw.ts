import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * AdamW with global gradient-norm clipping, on fp32 master weights:
 *   sumSquares  partial[slot, wg] = Σ g² over workgroup wg's stride of one gradient buffer
 *   clip        clip[0] = min(1, maxNorm / (√Σ partial + 1e-6)) (1 without clipping), clip[1] = the norm
 *   step        g = grad · clip[0]; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²
 *               p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (√(v / (1 - b2^t)) + eps)
 * Weight decay is decoupled, as torch.optim.AdamW's.
 */
const WG = 256;

/** Workgroups (and so partial sums) per gradient buffer: enough to spread a large buffer over a GPU. */
export const PARTIALS_PER_BUFFER = 64;

const SUM_SQUARES_PARAMS = uniformStruct({ n: 'u32', slot: 'u32' });
const CLIP_PARAMS = uniformStruct({ slots: 'u32', maxNorm: 'f32' });
const STEP_PARAMS = uniformStruct({ n: 'u32' });
/** The step's hyperparameters, rewritten each step (schedule, bias corrections) under ops recorded once. */
const HYPER = uniformStruct(
  { lr: 'f32', beta1: 'f32', beta2: 'f32', eps: 'f32', weightDecay: 'f32', bias1: 'f32', bias2: 'f32' },
  'Hyper',
);

const sumSquaresShader = /* wgsl */ `
${SUM_SQUARES_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> sums: array<f32, ${WG}>;

// Each workgroup writes its own partial sum: a fixed order, so the total is deterministic.
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
${CLIP_PARAMS.wgsl}
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
${HYPER.wgsl}
${STEP_PARAMS.wgsl}
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

export interface AdamWStep {
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  clip: GPUBuffer;
  hyper: GPUBuffer;
  n: number;
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

  /** partial[slot] ← the partial sums of grad² (grad: n floats). */
  sumSquaresOp({ grad, n, partial, slot }: { grad: GPUBuffer; n: number; partial: GPUBuffer; slot: number }): Op {
    return this.sumSquares.op([grad, partial], SUM_SQUARES_PARAMS.pack({ n, slot }), [PARTIALS_PER_BUFFER, 1, 1]);
  }

  /** clip[0] = the scale applied to gradients (1 when maxNorm ≤ 0), clip[1] = the global norm. */
  clipOp({
    partial,
    slots,
    clip,
    maxNorm,
  }: {
    partial: GPUBuffer;
    slots: number;
    clip: GPUBuffer;
    maxNorm: number;
  }): Op {
    return this.clip.op([partial, clip], CLIP_PARAMS.pack({ slots, maxNorm }), [1, 1, 1]);
  }

  /** The hyperparameters' uniform buffer, shared by every step op. */
  createHyper(): GPUBuffer {
    return this.device.createBuffer({
      size: 32,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'adamw hyper',
    });
  }

  /** Writes the hyperparameters of the 1-based step `step`. */
  writeHyper(hyper: GPUBuffer, s: AdamWSettings, step: number): void {
    const { lr, beta1, beta2, eps, weightDecay } = s;
    const values = HYPER.pack({
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      bias1: 1 - beta1 ** step,
      bias2: 1 - beta2 ** step,
    });
    // Every field is f32; the padding word is 0 either way.
    this.device.queue.writeBuffer(
      hyper,
      0,
      Float32Array.from(values, (v) => ('f32' in v ? v.f32 : 0)),
    );
  }

  /** One AdamW update of `param` (n floats), its moments m and v, with `clip`'s scale and `hyper`'s settings. */
  stepOp({ param, grad, m, v, clip, hyper, n }: AdamWStep): Op {
    return this.step.op([param, grad, m, v, clip, hyper], STEP_PARAMS.pack({ n }), grid1d(n, 64));
  }
}
