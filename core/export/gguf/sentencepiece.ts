/**
 * A SentencePiece-style BPE vocabulary (Gemma's tokenizer.json: spaces normalized to ▁, byte fallback to <0xXX>
 * tokens) as llama.cpp's "llama" (SPM) tokenizer reads it, in the converter's layout (_create_vocab_sentencepiece):
 * every id's piece, score and type, padded to the model's vocab_size with [PAD{i}] (UNUSED, score -10000); added
 * tokens CONTROL when special (or looking special) and USER_DEFINED otherwise (▁ written as a space), score -1000.
 * The converter takes scores from tokenizer.model, which Hone does not download: llama.cpp's SPM tokenizer merges the
 * adjacent pair whose joined piece scores highest, and Hugging Face's BPE the pair whose merge ranks first, so a
 * piece's score here is minus the rank of the first merge that makes it (the order tokenizer.json's merges were
 * written from tokenizer.model's scores in). Pieces no merge makes score below every merged one; byte pieces 0.
 */
import { type GgufMetadata, gguf } from './format';
import {
  type AddedToken,
  addedEntries,
  GgufTokenizerError,
  isObject,
  type Json,
  mergePairs,
  TokenType,
  vocabEntries,
} from './vocabulary';

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/** True for tokenizer.json's BPE with byte fallback: the vocabulary this file writes. */
export function isSentencePieceBpe(model: Json): boolean {
  return model.byte_fallback === true;
}

/**
 * The `tokenizer.ggml.*` vocabulary keys (model "llama", pre "default", tokens, scores, types, add_space_prefix) of
 * `tokenizerJson` (read from `file`), or a refusal naming the field llama.cpp's SPM tokenizer would not follow.
 */
export function sentencePieceVocabulary(
  tokenizerJson: Json,
  added: AddedToken[],
  vocabSize: number,
  file: string,
): GgufMetadata {
  const model = tokenizerJson.model as Json;
  const addSpacePrefix = spaceHandling(tokenizerJson, file);
  const pairs = mergePairs(model.merges, file);
  const rank = new Map<string, number>();
  pairs.forEach(([a, b], i) => {
    if (!rank.has(a + b)) rank.set(a + b, i);
  });

  const tokens = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const scores = new Float32Array(vocabSize).fill(-10_000);
  const types = new Int32Array(vocabSize).fill(TokenType.UNUSED);
  for (const [piece, id] of vocabEntries(model.vocab as Json, vocabSize, file)) {
    tokens[id] = piece;
    const merged = rank.get(piece);
    scores[id] = merged === undefined ? (BYTE_PIECE.test(piece) ? 0 : -pairs.length) : -merged;
    types[id] =
      piece === model.unk_token ? TokenType.UNKNOWN : BYTE_PIECE.test(piece) ? TokenType.BYTE : TokenType.NORMAL;
  }
  for (const { id, text, type } of addedEntries(added, vocabSize, file)) {
    tokens[id] = text;
    types[id] = type;
    scores[id] = -1000;
  }
  return new Map([
    ['tokenizer.ggml.model', gguf.string('llama')],
    ['tokenizer.ggml.pre', gguf.string('default')],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.scores', gguf.f32s(scores)],
    ['tokenizer.ggml.token_type', gguf.i32s(types)],
    ['tokenizer.ggml.add_space_prefix', gguf.bool(addSpacePrefix)],
  ]);
}

/**
 * Whether a ▁ is put in front of the text (a Prepend("▁") normalizer, as Llama 2's; Gemma's has none), after
 * checking that spaces become ▁ as llama.cpp's SPM tokenizer makes them, that nothing splits the text first, and that
 * the decoder turns ▁ back into spaces and <0xXX> into bytes.
 */
function spaceHandling(tokenizerJson: Json, file: string): boolean {
  const normalizer = tokenizerJson.normalizer;
  const steps =
    normalizer === null || normalizer === undefined
      ? []
      : isObject(normalizer) && Array.isArray(normalizer.normalizers)
        ? normalizer.normalizers
        : [normalizer];
  let prepend = false;
  let replace = false;
  for (const step of steps) {
    if (isObject(step) && step.type === 'Prepend' && step.prepend === '\u2581') prepend = true;
    else if (
      isObject(step) &&
      step.type === 'Replace' &&
      isObject(step.pattern) &&
      step.pattern.String === ' ' &&
      step.content === '\u2581'
    )
      replace = true;
    else {
      throw new GgufTokenizerError(
        `${file}: normalizer ${JSON.stringify(step)}: llama.cpp's SentencePiece tokenizer only writes spaces as ▁ ` +
          '(and may put one in front)',
      );
    }
  }
  if (!replace) throw new GgufTokenizerError(`${file}: the normalizer does not write spaces as ▁`);
  // After the normalizer no space is left, so a split on " " changes nothing.
  const pre = tokenizerJson.pre_tokenizer;
  const splitsSpaces = isObject(pre) && pre.type === 'Split' && isObject(pre.pattern) && pre.pattern.String === ' ';
  if (pre !== null && pre !== undefined && !splitsSpaces) {
    throw new GgufTokenizerError(
      `${file}: pre_tokenizer ${JSON.stringify(pre)}: llama.cpp's SentencePiece tokenizer does not split text first`,
    );
  }
  const decoder = tokenizerJson.decoder;
  const decoders = isObject(decoder) && Array.isArray(decoder.decoders) ? (decoder.decoders as unknown[]) : [];
  if (!decoders.some((d) => isObject(d) && d.type === 'ByteFallback')) {
    throw new GgufTokenizerError(`${file}: the decoder has no ByteFallback step for the <0xXX> tokens`);
  }
  return prepend;
}
