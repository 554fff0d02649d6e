/**
 * llama.cpp itself, through node-llama-cpp's prebuilt CPU binary (never downloaded or built: `build: 'never'`), to
 * check Hone's GGUF files: greedy continuations with each step's whole next-token distribution, to compare with
 * Hone's float64 CPU reference of the model (reference-greedy.ts).
 */
import { getLlama, type Llama, LlamaLogLevel, type Token } from 'node-llama-cpp';

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
