/**
 * LoRA dropout (PEFT's lora_dropout on the adapter path's input):
 *   dropout(x)[i] = keep(i) ? x[i] / (1 - p) : 0,  keep(i) = hash(seed, module, i) ≥ threshold(p)
 *   state [2] u32 = [seed, on], rewritten each step (on = 0: evaluation, every value passes unscaled)
 * A hash, so the backward draws the forward's mask again instead of storing it; the matmuls apply it as they read
 * (matmul.ts's `OperandMask` and masked low-rank term), so dropout(x) is never written out.
 */

/** WGSL `dropoutFactor(i, seed, on, moduleId, threshold, scale)`: 0 dropped, `scale` kept, 1 with dropout off. */
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

/**
 * WGSL: `masked(x, i, moduleId)`, value x (element i of its operand) through a module's mask, for kernels holding
 * several modules' values, each naming its own: reads the step's state from a `maskState` storage binding and the
 * threshold and scale from uniforms `p.threshold` and `p.maskScale`, which the kernel declares.
 */
export const MASKED_BY_MODULE_WGSL = /* wgsl */ `${DROPOUT_FACTOR_WGSL}

// A dropped value is 0 even where x is not finite.
fn masked(x: f32, i: u32, moduleId: u32) -> f32 {
  let f = dropoutFactor(i, maskState[0], maskState[1] != 0u, moduleId, p.threshold, p.maskScale);
  return select(0.0, x * f, f != 0.0);
}`;

/** The uint32 a hash must reach to keep a value: p of them fall below it. */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}
