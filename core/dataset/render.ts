/**
 * Examples into token ids as the model will read them: conversations through the model's chat template with a
 * label per token (-100 where there is no loss, as in Hugging Face), raw text with EOS at each document's end,
 * and the pieces preference and RL methods need.
 *
 * The template renders whole strings, so which tokens belong to an answer is found from the text: the prefix up to
 * each assistant turn (rendered with the generation prompt) and the prefix through it mark where the answer starts
 * and ends. The pieces are tokenized one by one, so an answer starts on a token boundary exactly as it does when
 * the model generates it after the generation prompt.
 */
import type { ModelTokenizer } from '../tokenizer';
import type { Example, Message } from './formats';

export const IGNORE_INDEX = -100;

export interface TokenizedExample {
  ids: number[];
  /** Per position: the id when that token carries loss, IGNORE_INDEX when it does not. */
  labels: number[];
}

export interface RenderOptions {
  /** Loss on the prompt tokens too (system and user turns, template markers); weight-0 answers still carry none. */
  trainOnPrompt?: boolean;
}

interface Span {
  start: number;
  end: number;
  /** Whether these characters carry loss. */
  loss: boolean;
}

function strip(messages: Message[]) {
  return messages.map(({ role, content }) => ({ role, content }));
}

/** The stretch of the rendered conversation each assistant message occupies, in characters. */
function answerSpans(tokenizer: ModelTokenizer, messages: Message[], full: string): Span[] {
  const spans: Span[] = [];
  let cursor = 0;
  messages.forEach((message, i) => {
    if (message.role !== 'assistant') return;
    const before = tokenizer.applyChatTemplate(strip(messages.slice(0, i)), { addGenerationPrompt: true });
    const through = tokenizer.applyChatTemplate(strip(messages.slice(0, i + 1)));
    let start: number;
    let end: number;
    if (full.startsWith(through) && through.startsWith(before) && before.length >= cursor) {
      start = before.length;
      end = through.length;
    } else {
      // Templates that render earlier turns differently from the last (Qwen3 drops empty thinking blocks) break the
      // prefix rule; the answer is then found by its content, with the end-of-turn token that follows it.
      start = full.indexOf(message.content, cursor);
      if (start < 0) throw new Error(`the chat template does not render assistant message ${i + 1} as written`);
      end = start + message.content.length;
      const eos = tokenizer.specialTokens.eos_token;
      if (eos !== undefined && full.startsWith(eos, end)) end += eos.length;
    }
    spans.push({ start, end, loss: message.weight !== 0 });
    cursor = end;
  });
  return spans;
}

/** A conversation as ids and labels; answers without a stop token of their own get EOS appended. */
export function renderChat(
  tokenizer: ModelTokenizer,
  messages: Message[],
  options: RenderOptions = {},
): TokenizedExample {
  const full = tokenizer.applyChatTemplate(strip(messages));
  const eos = tokenizer.eosTokenId;
  const ids: number[] = [];
  const labels: number[] = [];
  const push = (pieceIds: number[], loss: boolean) => {
    for (const id of pieceIds) {
      ids.push(id);
      labels.push(loss ? id : IGNORE_INDEX);
    }
  };
  let cursor = 0;
  for (const span of answerSpans(tokenizer, messages, full)) {
    push(tokenizer.encode(full.slice(cursor, span.start), { addSpecialTokens: false }), options.trainOnPrompt === true);
    const answer = tokenizer.encode(full.slice(span.start, span.end), { addSpecialTokens: false });
    if (eos !== undefined && !answer.some((id) => tokenizer.eosTokenIds.includes(id))) answer.push(eos);
    push(answer, span.loss);
    cursor = span.end;
  }
  push(tokenizer.encode(full.slice(cursor), { addSpecialTokens: false }), options.trainOnPrompt === true);
  return { ids, labels };
}

/** Raw text is tokenized a paragraph-aligned piece at a time, so a book-length document is never one huge call. */
const TEXT_PIECE = 1 << 16;

/** A document for continued pretraining: the tokenizer's own special tokens (BOS, if it adds one), then EOS. */
export function renderText(tokenizer: ModelTokenizer, text: string): number[] {
  const ids: number[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + TEXT_PIECE);
    if (end < text.length) {
      const paragraph = text.lastIndexOf('\n\n', end);
      if (paragraph > start) end = paragraph + 2;
    }
    ids.push(...tokenizer.encode(text.slice(start, end), { addSpecialTokens: start === 0 }));
    start = end;
  }
  const eos = tokenizer.eosTokenId;
  if (eos !== undefined) ids.push(eos);
  return ids;
}

/** A prompt ready for the model's answer (the template's generation prompt at its end). */
export function renderPrompt(tokenizer: ModelTokenizer, prompt: Message[]): number[] {
  return tokenizer.encode(tokenizer.applyChatTemplate(strip(prompt), { addGenerationPrompt: true }), {
    addSpecialTokens: false,
  });
}

export interface RenderedPreference {
  prompt: number[];
  /** The prompt followed by each answer, labels only on the answer. */
  chosen: TokenizedExample;
  rejected: TokenizedExample;
}

export function renderPreference(
  tokenizer: ModelTokenizer,
  example: Extract<Example, { kind: 'preference' }>,
): RenderedPreference {
  return {
    prompt: renderPrompt(tokenizer, example.prompt),
    chosen: renderChat(tokenizer, [...example.prompt, ...example.chosen]),
    rejected: renderChat(tokenizer, [...example.prompt, ...example.rejected]),
  };
}

/**
 * The token sequences an example becomes for its method: one per conversation or document, two for a preference
 * pair (the chosen and the rejected), one for an RL prompt (the prompt alone, no labels).
 */
export function renderExample(
  tokenizer: ModelTokenizer,
  example: Example,
  options: RenderOptions = {},
): TokenizedExample[] {
  switch (example.kind) {
    case 'text': {
      const ids = renderText(tokenizer, example.text);
      return [{ ids, labels: ids.slice() }];
    }
    case 'chat':
      return [renderChat(tokenizer, example.messages, options)];
    case 'preference': {
      const { chosen, rejected } = renderPreference(tokenizer, example);
      return [chosen, rejected];
    }
    case 'prompt': {
      const ids = renderPrompt(tokenizer, example.prompt);
      return [{ ids, labels: ids.map(() => IGNORE_INDEX) }];
    }
  }
}
