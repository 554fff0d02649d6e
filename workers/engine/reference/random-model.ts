/**
 * Random test models for the CPU reference and the GPU engine: a tiny config with awkward sizes, seeded weights for
 * every tensor it needs, and seeded LoRA adapters. Every value is rounded to float32 so the GPU can be handed the
 * exact same numbers the float64 reference uses.
 */
import { expectedTensors, type ModelConfig, type Projection, projectionShape } from '../../../core/model-config';
import { fnv1a, mulberry32 } from '../../../core/random';
import type { ReferenceLora } from './transformer.cpu';

/**
 * A two-layer llama small enough for finite differences, with sizes that divide nothing nicely
 * (vocab 37, hidden 24, intermediate 40) and grouped-query attention (4 query heads over 2 kv heads).
 */
export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    modelType: 'llama',
    vocabSize: 37,
    hiddenSize: 24,
    intermediateSize: 40,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 6,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    gemma: null,
    ...overrides,
  };
}

/**
 * A tiny Gemma 3 (tinyConfig's sizes): three layers, local ones around a global one, a sliding window of 3 that
 * rows of more tokens pass, its own score scale and rotary bases.
 */
export function tinyGemmaConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return tinyConfig({
    modelType: 'gemma3_text',
    numLayers: 3,
    qkNorm: true,
    ropeTheta: 1000,
    gemma: {
      embedScale: Math.fround(Math.sqrt(24)),
      queryPreAttnScalar: 5,
      slidingWindow: 3,
      slidingLayers: [true, false, true],
      localRopeTheta: 10,
    },
    ...overrides,
  });
}

/**
 * Every tensor of `expectedTensors(config)`, row-major. Each tensor draws from its own generator, seeded by
 * `seed` and its key, so two configs that share a tensor (say, with and without attention bias) get the same values.
 * - embeddings: U(-0.5, 0.5): tied logits of order 1, so the loss starts near ln(vocab) without being uniform;
 * - projections (and an untied lm_head): U(-1, 1) / sqrt(in), keeping activations of order 1;
 * - norm weights: 1 ± 0.1, so a bug that ignores them shows;
 * - biases: ± 0.1, small but not zero.
 */
export function randomWeights(config: ModelConfig, seed: number): Map<string, Float64Array> {
  const weights = new Map<string, Float64Array>();
  for (const [key, shape] of expectedTensors(config)) {
    weights.set(
      key,
      fill(
        shape.reduce((a, b) => a * b, 1),
        tensorDraw(key, shape, seed),
      ),
    );
  }
  return weights;
}

/** Tensor `key` [shape] of randomWeights(…, seed), its values one call at a time in row-major order. */
export function tensorDraw(key: string, shape: readonly number[], seed: number): () => number {
  const next = mulberry32(seed ^ fnv1a(key));
  const uniform = () => 2 * next() - 1; // U(-1, 1)
  if (key === 'model.embed_tokens.weight') return () => 0.5 * uniform();
  if (key.endsWith('norm.weight')) return () => 1 + 0.1 * uniform();
  if (key.endsWith('.bias')) return () => 0.1 * uniform();
  return () => uniform() / Math.sqrt(shape[1]); // [out, in] matrices
}

/**
 * A LoRA adapter on `targets` in every layer, A and B both non-zero (PEFT starts B at zero, which would leave
 * dA = 0 and hide bugs in it). A ~ U(-1, 1) / sqrt(in) (PEFT's kaiming-uniform bound), B ~ U(-1, 1) / sqrt(rank).
 */
export function randomLora(
  config: ModelConfig,
  targets: Projection[],
  rank: number,
  alpha: number,
  useRslora: boolean,
  seed: number,
): ReferenceLora {
  const modules = new Map<string, { A: Float64Array; B: Float64Array }>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const projection of targets) {
      const key = `${layer}.${projection}`;
      const [outDim, inDim] = projectionShape(config, projection);
      const nextA = mulberry32(seed ^ fnv1a(`${key}.lora_A`));
      const nextB = mulberry32(seed ^ fnv1a(`${key}.lora_B`));
      modules.set(key, {
        A: fill(rank * inDim, () => (2 * nextA() - 1) / Math.sqrt(inDim)),
        B: fill(outDim * rank, () => (2 * nextB() - 1) / Math.sqrt(rank)),
      });
    }
  }
  return { rank, alpha, useRslora, modules };
}

/** n values from `draw`, rounded to float32. */
function fill(n: number, draw: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(draw());
  return out;
}
