/**
 * Answers from a model, with or without an adapter: one streamed (`reply`: the Compare step's chats and `hone
 * generate`), or several at once (`replyRows`: evaluations), the same answer either way.
 */
import type { SamplingSettings } from '../../core/generation/sampling';
import { samplingProblems } from '../../core/generation/sampling';
import type { ModelConfig } from '../../core/model-config';
import type { ChatMessage, ModelTokenizer } from '../../core/tokenizer';
import { Decoder } from './model/decoder';
import { type Generation, generate, generateRows } from './model/generate';
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
function replyProblems(options: Pick<ReplyOptions, 'sampling' | 'maxNewTokens'>): string[] {
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

export interface RowsReplyOptions extends Omit<ReplyOptions, 'prompt' | 'stopStrings'> {
  prompts: Prompt[];
  /** Each prompt's name in errors (an example's file and line). */
  names?: string[];
}

/**
 * The model's answers to several prompts, decoded together (generateRows: a row each, every row drawn from the
 * same seed), the answers `reply` gives each prompt alone. No stop strings: the stop tokens end each answer.
 */
export async function replyRows(
  engine: { device: GPUDevice; kernels: EngineKernels },
  model: ReplyModel,
  options: RowsReplyOptions,
): Promise<Reply[]> {
  const problems = replyProblems(options);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const { tokenizer } = model;
  const prompts = options.prompts.map((prompt) => promptIds(prompt, tokenizer));
  const positions = model.config.maxPositionEmbeddings;
  for (const [i, ids] of prompts.entries()) {
    if (ids.length >= positions) {
      const name = options.names?.[i] ?? `prompt ${i + 1}`;
      throw new Error(
        `${name}: its ${ids.length} tokens leave no room to answer in the model's ${positions} positions`,
      );
    }
  }
  const longest = Math.max(...prompts.map((ids) => ids.length));
  const length = Math.min(positions, longest + options.maxNewTokens);
  const decoder = new Decoder(engine.device, engine.kernels, model.weights, model.lora, length, prompts.length);
  try {
    const requests = prompts.map((prompt) => ({ prompt, seed: options.seed }));
    const stopIds = tokenizer?.eosTokenIds ?? [];
    const rows = await generateRows(decoder, requests, {
      ...options.sampling,
      maxNewTokens: options.maxNewTokens,
      stopIds,
    });
    return rows.map((row) => ({
      ids: row.ids,
      text: tokenizer ? tokenizer.decode(row.ids, { skipSpecialTokens: true }) : '',
      tokensPerSecond: row.tokensPerSecond,
      stoppedBy: row.stoppedBy,
    }));
  } finally {
    decoder.destroy();
  }
}
