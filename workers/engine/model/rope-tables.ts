import type { ModelConfig } from '../../../core/model-config';
import { ropeInverseFrequencies } from './rope-frequencies';

/**
 * cos and sin of every rotary angle, [seq, headDim / 2], for positions 0..seq-1: angle = position * inv_freq[i].
 * Computed in float64 and rounded once, so the tables carry no accumulated error. `local`: Gemma's local layers'.
 */
export function ropeTables(
  config: ModelConfig,
  seq: number,
  local = false,
): { cos: Float32Array<ArrayBuffer>; sin: Float32Array<ArrayBuffer> } {
  const invFreq = ropeInverseFrequencies(config, local);
  const half = invFreq.length;
  const cos = new Float32Array(seq * half);
  const sin = new Float32Array(seq * half);
  for (let t = 0; t < seq; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * invFreq[i];
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
