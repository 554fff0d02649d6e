/**
 * One answer from a model, with or without an adapter, streamed: the Compare step's chats and `hone generate` both
 * reply through `reply`.
 */
import type { SamplingSettings } from '../../core/generation/sampling';
import { samplingProblems } from '../../core/generation/sampling';
import type { ModelConfig } from '../../core/model-config';
import type { ChatMessage, ModelTokenizer } from '../../core/tokenizer';
import { Decoder } from './model/decoder';
import { type Generation, generate } from './model/generate';
import type { EngineKernels } from './model/kernels';
import type { GpuLora } from './model/lora';
import type { GpuWeights } from './model/weights';

/** What the model continues: a conversation through its chat template, text as is, or token ids. */
export type Prompt = { messages: ChatMessage[] } | { text: string } | { ids: number[] };

export interface ReplyOptions {
  prompt: Prompt;
  sampling: SamplingSettings;
  maxNewTokens: number;
  seed: number;
  stopStrings?: string[];
}

export interface Reply {
  ids: number[];
  /** The answer's text; empty without a tokenizer. */
  text: string;
  tokensPerSecond: number;
  stoppedBy: Generation['stoppedBy'];
}

/** The model a reply is drawn from: weights, an adapter or none, and the tokenizer (none: token ids only). */
export interface ReplyModel {
  config: ModelConfig;
  weights: GpuWeights;
  lora: GpuLora | null;
  tokenizer: ModelTokenizer | null;
}

/** Every reason the options cannot generate, or none. */
function replyProblems(options: ReplyOptions): string[] {
  const problems = samplingProblems(options.sampling);
  const n = options.maxNewTokens;
  if (!Number.isInteger(n) || n < 1)
    problems.push(`the answer's length must be a whole number of at least 1, not ${n}`);
  return problems;
}

/** The prompt's token ids. */
function promptIds(prompt: Prompt, tokenizer: ModelTokenizer | null): number[] {
  if ('ids' in prompt) return prompt.ids;
  if (!tokenizer) throw new Error('The model has no tokenizer, so it cannot read text: give token ids.');
  if ('text' in prompt) return tokenizer.encode(prompt.text);
  return tokenizer.encode(tokenizer.applyChatTemplate(prompt.messages, { addGenerationPrompt: true }), {
    addSpecialTokens: false,
  });
}

/**
 * The model's answer through the key-value cache. `onText` hears the answer so far, whole characters only; it
 * returns false to stop after the current token.
 */
export async function reply(
  engine: { device: GPUDevice; kernels: EngineKernels },
  model: ReplyModel,
  options: ReplyOptions,
  onText: (text: string) => boolean,
): Promise<Reply> {
  const problems = replyProblems(options);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const { tokenizer } = model;
  const prompt = promptIds(options.prompt, tokenizer);
  const length = Math.min(model.config.maxPositionEmbeddings, prompt.length + options.maxNewTokens);
  const decoder = new Decoder(engine.device, engine.kernels, model.weights, model.lora, length);
  try {
    let going = true;
    const result = await generate(
      decoder,
      prompt,
      {
        ...options.sampling,
        maxNewTokens: options.maxNewTokens,
        seed: options.seed,
        stopIds: tokenizer?.eosTokenIds ?? [],
        stopStrings: options.stopStrings,
        decode: tokenizer ? (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }) : undefined,
      },
      (_, text) => {
        // The text so far may end inside a character.
        if (text !== undefined && !text.endsWith('\uFFFD')) going = onText(text);
        return going;
      },
    );
    return {
      ids: result.ids,
      text: result.text ?? '',
      tokensPerSecond: result.tokensPerSecond,
      stoppedBy: result.stoppedBy,
    };
  } finally {
    decoder.destroy();
  }
}
