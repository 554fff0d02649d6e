import { type ModelConfig, parseModelConfig } from '../../core/model-config';
import {
  GEMMA3_270M,
  LLAMA32_1B,
  LLAMA32_3B,
  QWEN3_06B,
  QWEN25_05B,
  QWEN25_15B,
} from '../../tests/fixtures/hub-configs';
import { smolLm2Config } from './peer-workload';

/**
 * The model shapes the bench runs: SmolLM2-135M's is the peers' workload (its weights, tokens and losses theirs);
 * the others are the larger models the studio offers, for decoding, where a model's size is what a token costs, and
 * Gemma 3 270M's, Llama 3.2 1B's and 3B's and Qwen2.5 1.5B's for the training step too (patterned weights, the
 * peers' tokens).
 */
export const BENCH_SHAPES = [
  'smollm2-135m',
  'qwen2.5-0.5b',
  'qwen3-0.6b',
  'llama-3.2-1b',
  'gemma-3-270m',
  'qwen2.5-1.5b',
  'llama-3.2-3b',
] as const;
export type BenchShape = (typeof BENCH_SHAPES)[number];

/** The shapes whose training step the bench times (the larger ones over a quantized base: --base). */
export const STEP_SHAPES: readonly BenchShape[] = [
  'smollm2-135m',
  'gemma-3-270m',
  'llama-3.2-1b',
  'qwen2.5-1.5b',
  'llama-3.2-3b',
];

const HUB_CONFIGS: Record<Exclude<BenchShape, 'smollm2-135m'>, unknown> = {
  'qwen2.5-0.5b': QWEN25_05B,
  'qwen3-0.6b': QWEN3_06B,
  'llama-3.2-1b': LLAMA32_1B,
  'gemma-3-270m': GEMMA3_270M,
  'qwen2.5-1.5b': QWEN25_15B,
  'llama-3.2-3b': LLAMA32_3B,
};

/** The shape's config, with `layers` layers where given (the peers' SmolLM2 has 30; Gemma's keep its first kinds). */
export function benchConfig(shape: BenchShape, layers?: number): ModelConfig {
  if (shape === 'smollm2-135m') return smolLm2Config(layers ?? 30);
  const config = parseModelConfig(HUB_CONFIGS[shape], shape);
  if (layers === undefined) return config;
  const gemma = config.gemma && { ...config.gemma, slidingLayers: config.gemma.slidingLayers.slice(0, layers) };
  return { ...config, numLayers: layers, gemma };
}

/**
 * Weights for a shape other than the peers': a fixed pattern of small values (std about 0.02, norms 1), cheap to
 * make for a billion parameters; decoding's speed does not depend on them.
 */
export function patternTensor(shape: readonly number[], key: string): Float32Array<ArrayBuffer> {
  const n = shape.reduce((a, b) => a * b, 1);
  // Norms of 1 (Gemma's hold 1 + w: w = 0 there).
  if (key.endsWith('norm.weight')) return new Float32Array(n).fill(1);
  const pattern = Float32Array.from({ length: 4093 }, (_, i) => 0.035 * Math.sin(i * 12.9898 + n));
  const out = new Float32Array(n);
  for (let at = 0; at < n; at += pattern.length) out.set(pattern.subarray(0, Math.min(pattern.length, n - at)), at);
  return out;
}
