import { f32, grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * LoRA dropout (PEFT's lora_dropout on the adapter path's input), elementwise over n values:
 *   y = keep(i) ? x[i] / (1 - p) : 0
 * keep(i) hashes (step seed, module, i), so the backward regenerates the forward's mask instead of storing it,
 * and each module draws its own mask, as each PEFT module has its own nn.Dropout. The step's state lives in a
 * small buffer, rewritten each step, so recorded ops stay valid: [seed, on]; with on = 0 (evaluation, as in
 * PyTorch's eval mode) every value passes unscaled.
 */
/**
 * WGSL: `dropoutFactor(i, state, moduleId, threshold, scale)`, value i's multiplier: 0 where dropped, `scale`
 * (1 / (1 - p)) where kept, 1 with dropout off. Shared with the matmul that applies a module's mask to its
 * low-rank term (kernels/matmul.ts), so both draw the same mask.
 */
export const DROPOUT_FACTOR_WGSL = /* wgsl */ `
fn mix(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u;
  return h;
}

fn dropoutFactor(i: u32, seed: u32, on: bool, moduleId: u32, threshold: u32, scale: f32) -> f32 {
  let keep = !on || mix(i ^ mix(seed + moduleId * 0x9e3779b9u)) >= threshold;
  return select(0.0, select(1.0, scale, on), keep);
}`;

const shader = /* wgsl */ `
struct Params { n: u32, moduleId: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<u32>; // [seed, on]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${DROPOUT_FACTOR_WGSL}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let f = dropoutFactor(i, state[0], state[1] != 0u, p.moduleId, p.threshold, p.scale);
  // A dropped value is 0 even where x is not finite.
  y[i] = select(0.0, x[i] * f, f != 0.0);
}
`;

/** The uint32 a hash must reach to keep a value: p of them fall below it. */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

export class DropoutKernel {
  private readonly kernel: Kernel;

  constructor(device: GPUDevice) {
    this.kernel = new Kernel(device, shader, 'lora_dropout');
  }

  /** `state`: two u32, [seed, on]. */
  op(x: GPUBuffer, state: GPUBuffer, y: GPUBuffer, n: number, module: number, p: number): Op {
    return this.kernel.op(
      [x, state, y],
      [u32(n), u32(module), u32(dropoutThreshold(p)), f32(1 / (1 - p))],
      grid1d(n, 64),
    );
  }
}
