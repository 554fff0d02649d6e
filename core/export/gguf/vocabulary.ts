/** What the GGUF tokenizer writers (byte-level BPE in tokenizer.ts, SentencePiece in sentencepiece.ts) share. */

/** gguf-py's TokenType. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export class GgufTokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufTokenizerError';
  }
}

export type Json = Record<string, unknown>;

export const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** An entry of tokenizer.json's added_tokens. */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** gguf-py's TextModel.does_token_look_special. */
export function looksSpecial(token: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(token) ||
    (token.startsWith('<|') && token.endsWith('|>')) ||
    (token.startsWith('<\uff5c') && token.endsWith('\uff5c>')) ||
    (token.startsWith('<unused') && token.endsWith('>'))
  );
}

/** tokenizer.json's model.merges as [a, b] pairs, from "a b" strings or [a, b] arrays. */
export function mergePairs(list: unknown, file: string): [string, string][] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new GgufTokenizerError(`${file}: model.merges is not a list`);
  return list.map((merge, i) => {
    const parts = typeof merge === 'string' ? merge.split(' ') : merge;
    if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((part) => typeof part === 'string')) {
      throw new GgufTokenizerError(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
    }
    return parts as [string, string];
  });
}

/** Each token of tokenizer.json's model.vocab with its id, checked to be one of config.json's `vocabSize`. */
export function vocabEntries(vocab: Json, vocabSize: number, file: string): [string, number][] {
  return Object.entries(vocab).map(([token, id]) => {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw new GgufTokenizerError(`${file}: vocab["${token}"] is not an id`);
    if ((id as number) >= vocabSize) throw tooLarge(file, token, id as number, vocabSize);
    return [token, id as number];
  });
}

/**
 * Each added token's id (checked as vocabEntries checks), GGUF type (control for special tokens and ones that look
 * special, user-defined otherwise) and text (a user-defined token's ▁ written as a space, as the converter does).
 */
export function addedEntries(
  added: AddedToken[],
  vocabSize: number,
  file: string,
): { id: number; text: string; type: number }[] {
  return added.map((token) => {
    if (token.id < 0) throw new GgufTokenizerError(`${file}: added token ${token.content} has id ${token.id}`);
    if (token.id >= vocabSize) throw tooLarge(file, token.content, token.id, vocabSize);
    const control = token.special || looksSpecial(token.content);
    return control
      ? { id: token.id, text: token.content, type: TokenType.CONTROL }
      : { id: token.id, text: token.content.replaceAll('\u2581', ' '), type: TokenType.USER_DEFINED };
  });
}

function tooLarge(file: string, token: string, id: number, vocabSize: number): GgufTokenizerError {
  return new GgufTokenizerError(
    `${file}: token ${JSON.stringify(token)} has id ${id}, but config.json's vocab_size is ${vocabSize}`,
  );
}
