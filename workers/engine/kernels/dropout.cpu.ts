import { dropoutThreshold } from './dropout';

/** The hash LoRA dropout uses (lowbias32, `DROPOUT_FACTOR_WGSL`), in 32-bit unsigned arithmetic. */
function mix(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** CPU twin of LoRA dropout's mask as the matmuls draw it: n multipliers, 0 or 1 / (1 - p). */
export function dropoutMaskCpu(n: number, seed: number, module: number, p: number): Float64Array {
  const threshold = dropoutThreshold(p);
  const moduleHash = mix((seed + Math.imul(module, 0x9e3779b9)) >>> 0);
  return Float64Array.from({ length: n }, (_, i) => (mix((i ^ moduleHash) >>> 0) >= threshold ? 1 / (1 - p) : 0));
}

/** `values` with `mask` applied from index `offset` on: what a matmul operand read through the mask holds. */
export function throughMaskCpu(values: Float32Array, mask: Float64Array, offset = 0): Float32Array {
  return Float32Array.from(values, (x, i) => (i < offset ? x : x * mask[i - offset]));
}
