/**
 * Hone's float64 CPU reference of a model (workers/engine/reference) as a language model: its logits, next-token
 * distributions and greedy continuations, which the GPU decoder and llama.cpp's runs of Hone's GGUF files are
 * checked against.
 */
import type { ModelConfig } from '../../core/model-config';
import type { ReferenceLora } from '../../workers/engine/reference/model.cpu';
import { referenceBatchLogits } from '../../workers/engine/reference/transformer.cpu';

/** The reference model's logits for one sequence: [tokens.length, vocab]. */
export function referenceLogits(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[],
): Float64Array {
  return referenceBatchLogits(config, weights, lora, [tokens]);
}

/** Softmax of one row of logits. */
export function softmax(logits: Float64Array): Float64Array {
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  const out = Float64Array.from(logits, (l) => Math.exp(l - max));
  const sum = out.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** The reference's next-token distributions along `prompt` + `continuation` (teacher-forced), one per continued token. */
export function referenceProbs(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  prompt: number[],
  continuation: number[],
): Float64Array[] {
  const tokens = [...prompt, ...continuation.slice(0, -1)];
  const logits = referenceLogits(config, weights, lora, tokens);
  const V = config.vocabSize;
  return continuation.map((_, i) => softmax(logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V)));
}

/** Hone's own greedy continuation, from the reference. */
export function referenceGreedy(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  prompt: number[],
  steps: number,
): number[] {
  const tokens = [...prompt];
  const V = config.vocabSize;
  for (let s = 0; s < steps; s++) {
    const logits = referenceLogits(config, weights, lora, tokens);
    tokens.push(argmax(logits.subarray((tokens.length - 1) * V, tokens.length * V)));
  }
  return tokens.slice(prompt.length);
}
