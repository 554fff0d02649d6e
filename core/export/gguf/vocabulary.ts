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
