import type { ModelConfig } from '../../../core/model-config';

/**
 * The rotary embedding's inverse frequencies, [headDim / 2], exactly as Hugging Face transformers computes them:
 * inv_freq[i] = 1 / theta^(2i / headDim), then, for `rope_scaling` type `llama3`, rescaled like
 * `_compute_llama3_parameters`. The angle of pair i at position p is p * inv_freq[i]; the CPU reference and the
 * GPU engine both build their cos/sin tables from this one function. `local`: Gemma's sliding layers' (their own
 * base, no scaling).
 */
export function ropeInverseFrequencies(
  config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'> & Partial<Pick<ModelConfig, 'gemma'>>,
  local = false,
): Float64Array {
  const { headDim } = config;
  if (local && !config.gemma) throw new Error('ropeInverseFrequencies: only Gemma has local layers');
  const ropeTheta = local && config.gemma ? config.gemma.localRopeTheta : config.ropeTheta;
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`ropeInverseFrequencies: headDim must be a positive even integer, got ${headDim}`);
  }
  const half = headDim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / ropeTheta ** ((2 * i) / headDim);
  if (config.ropeScaling && !local) applyLlama3Scaling(invFreq, config.ropeScaling);
  return invFreq;
}

/**
 * Llama 3.1's frequency-dependent rescaling (in place). Long wavelengths (beyond the original context divided by
 * lowFreqFactor) are slowed down by `factor` so positions past the original context stay in range; short
 * wavelengths (below original / highFreqFactor) carry local detail and are left alone; in between, the two are
 * blended linearly in original / wavelength.
 */
function applyLlama3Scaling(invFreq: Float64Array, scaling: NonNullable<ModelConfig['ropeScaling']>): void {
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
  const lowFreqWavelen = oldContext / lowFreqFactor;
  const highFreqWavelen = oldContext / highFreqFactor;
  for (let i = 0; i < invFreq.length; i++) {
    const wavelen = (2 * Math.PI) / invFreq[i];
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      invFreq[i] /= factor;
      continue;
    }
    const smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    invFreq[i] = ((1 - smooth) * invFreq[i]) / factor + smooth * invFreq[i];
  }
}
