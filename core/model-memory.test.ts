import { describe, expect, it } from 'vitest';
import { GEMMA3_270M } from '../tests/fixtures/hub-configs';
import { parseModelConfig } from './model-config';
import { checkFit, estimateTrainingMemory, weightBytes } from './model-memory';

const smollm2 = parseModelConfig({
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  max_position_embeddings: 8192,
  tie_word_embeddings: true,
});

describe('model memory', () => {
  it("counts Gemma 3's two extra activations a layer and its 262k vocabulary within the logits' slice", () => {
    const gemma = parseModelConfig(GEMMA3_270M);
    const [N, d, L] = [512, gemma.hiddenSize, gemma.numLayers];
    const memory = estimateTrainingMemory(gemma);
    const asLlama = estimateTrainingMemory({ ...gemma, gemma: null });
    // Per layer the block outputs before their norms and their rstd; in the backward one more [N, d] gradient.
    expect(memory.activations - asLlama.activations).toBe(4 * (L * N * (2 * d + 2) + N * d));
    // The logits are a 64 MiB slice at a time, whatever the vocabulary; the embedding table is split, so the
    // largest binding is an MLP matrix.
    expect(memory.largestBinding).toBe(4 * gemma.intermediateSize * d);
    expect(memory.weights).toBe(weightBytes(gemma, false));
    expect(memory.total).toBeLessThan(2.5e9);
  });

  it('says when a weight cannot fit one binding, and otherwise that it fits', () => {
    const memory = estimateTrainingMemory(smollm2);
    expect(memory.largestBinding).toBe(1536 * 576 * 4);
    expect(checkFit(memory, { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30 }).fits).toBe(true);
    const small = checkFit(memory, { maxStorageBufferBindingSize: 2 ** 20, maxBufferSize: 2 ** 30 });
    expect(small.fits).toBe(false);
    expect(small.reason).toMatch(/largest weight needs 3538944 bytes.*allows 1048576/);
  });

  it('counts the loaded weights as held, and beside a full run its fp32 copy', () => {
    const fp32 = weightBytes(smollm2, false);
    const half = weightBytes(smollm2, true);
    // Only the 61 norm weights stay fp32 when the matrices are halved.
    expect(half).toBe(fp32 / 2 + 2 * 576 * 61);
    expect(estimateTrainingMemory(smollm2, { halfMatrices: true, keepsBase: true }).weights).toBe(half);
    expect(estimateTrainingMemory(smollm2, { full: true, halfMatrices: true }).weights).toBe(fp32);
    expect(estimateTrainingMemory(smollm2, { full: true, halfMatrices: true, keepsBase: true }).weights).toBe(
      fp32 + half,
    );
  });
});
