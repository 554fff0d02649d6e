/**
 * llama.cpp itself, through node-llama-cpp's prebuilt CPU binary (never downloaded or built: `build: 'never'`), to
 * check Hone's GGUF files: greedy continuations with each step's whole next-token distribution, and the same from
 * Hone's float64 CPU reference of the model (workers/engine/reference), for comparison.
 */
import { getLlama, type Llama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import type { ModelConfig } from '../../core/model-config';
import { embeddingCpu } from '../../workers/engine/kernels/embedding.cpu';
import {
  type Dims,
  layerForward,
  linearForward,
  rmsNormForward,
  rotaryTables,
} from '../../workers/engine/reference/layer.cpu';
import { buildModel, type ReferenceLora } from '../../workers/engine/reference/model.cpu';

let llama: Promise<Llama> | null = null;

/** One llama.cpp instance per test file, on the CPU only. */
export function cpuLlama(): Promise<Llama> {
  llama ??= getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
  return llama;
}

export interface Continuation {
  /** The greedy tokens after the prompt. */
  ids: number[];
  /** Before each of them, the probability of every token in the vocabulary. */
  probs: Float64Array[];
}

export interface LlamaRunOptions {
  /** A LoRA GGUF applied at scale 1. */
  lora?: string;
  /** The KV cache's type: llama.cpp's default F16, or F32 to compare an F32 model closely. */
  kvCache?: 'F16' | 'F32';
}

/** llama.cpp's greedy continuation of `prompt` (token ids) for `steps` tokens, over a vocabulary of `vocab`. */
export async function llamaGreedy(
  modelPath: string,
  prompt: number[],
  steps: number,
  vocab: number,
  options: LlamaRunOptions = {},
): Promise<Continuation> {
  const model = await (await cpuLlama()).loadModel({ modelPath });
  try {
    const context = await model.createContext({
      contextSize: 128,
      flashAttention: false,
      batchSize: 128,
      threads: 2,
      lora: options.lora ? { adapters: [{ filePath: options.lora, scale: 1 }] } : undefined,
      experimentalKvCacheKeyType: options.kvCache ?? 'F16',
      experimentalKvCacheValueType: options.kvCache ?? 'F16',
    });
    const result: Continuation = { ids: [], probs: [] };
    const sequence = context.getSequence();
    for await (const step of sequence.evaluateWithMetadata(
      prompt as Token[],
      { probabilities: true },
      { temperature: 0 },
    )) {
      const probs = new Float64Array(vocab);
      for (const [id, p] of step.probabilities) probs[id] = p;
      result.ids.push(step.token);
      result.probs.push(probs);
      if (result.ids.length >= steps) break;
    }
    await context.dispose();
    return result;
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's tokens for `text`, special tokens parsed, none added. */
export async function llamaTokenize(modelPath: string, texts: string[]): Promise<number[][]> {
  const model = await (await cpuLlama()).loadModel({ modelPath, vocabOnly: true });
  try {
    return texts.map((text) => [...model.tokenize(text, true)]);
  } finally {
    await model.dispose();
  }
}

/** The reference model's logits for one sequence: [tokens.length, vocab]. */
export function referenceLogits(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  lora: ReferenceLora | null,
  tokens: number[],
): Float64Array {
  const model = buildModel(config, weights, lora, null);
  const T = tokens.length;
  const D = config.hiddenSize;
  const dims: Dims = { B: 1, T, N: T, D, H: config.numHeads, KV: config.numKvHeads, hd: config.headDim };
  const rope = rotaryTables(model.invFreq, T);
  let x = embeddingCpu(tokens, model.embed.value, D);
  for (const layer of model.layers) x = layerForward(model, layer, x, dims, rope).out;
  const hidden = rmsNormForward(x, model.finalNorm.value, T, D, config.rmsNormEps).y;
  return linearForward(model.lmHead, hidden, T).y;
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

/**
 * The largest |ln p - ln q| over the tokens `q` gives at least `floor` (a relative error, so a flat distribution
 * over a large vocabulary, whose probabilities are all small, is compared as closely as a peaked one).
 */
export function maxLogDiff(p: ArrayLike<number>, q: ArrayLike<number>, floor = 1e-6): number {
  let worst = 0;
  for (let i = 0; i < p.length; i++) {
    if (q[i] >= floor) worst = Math.max(worst, Math.abs(Math.log(p[i]) - Math.log(q[i])));
  }
  return worst;
}

/** ln p₁ − ln p₂ for a distribution's two most likely tokens: how far its top token is from a tie. */
export function topTwoGap(probs: ArrayLike<number>): number {
  let first = 0;
  let second = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] > first) [first, second] = [probs[i], first];
    else if (probs[i] > second) second = probs[i];
  }
  return Math.log(first) - Math.log(second);
}
