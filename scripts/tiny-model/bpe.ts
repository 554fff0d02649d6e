/**
 * Byte-level BPE training (GPT-2's scheme), for the tokenizer of Hone's own tiny model, written out as the
 * Hugging Face tokenizer files the model loader reads. No maintained JavaScript library trains BPE
 * (@huggingface/tokenizers only runs them), so this is ours; running the result is the library's job.
 *
 * Training: text is split into words by GPT-2's pattern (what the ByteLevel pre-tokenizer applies), each word
 * becomes its UTF-8 bytes, and the most frequent adjacent pair is merged into a new token until the vocabulary
 * is full. Pair counts are kept up to date incrementally, touching only the words a merge changes.
 */

/** GPT-2's pre-tokenization pattern, as the ByteLevel pre-tokenizer uses it. */
const WORD = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's reversible map from bytes to printable characters (the vocabulary's alphabet). */
export function bytesToUnicode(): string[] {
  const printable = new Set([
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ]);
  const map: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.has(b) ? b : 256 + extra++);
  return map;
}

export interface BpeResult {
  /** Merges in the order learned, as pairs of token strings. */
  merges: [string, string][];
}

const pairKey = (a: number, b: number) => a * 1_048_576 + b;

/** Learns `merges` merges (at most) from `texts`. Deterministic: ties go to the pair seen first. */
export function trainBpe(texts: Iterable<string>, merges: number): BpeResult {
  const alphabet = bytesToUnicode();
  const encoder = new TextEncoder();
  // Distinct words with their counts.
  const counts = new Map<string, number>();
  for (const text of texts) for (const [word] of text.matchAll(WORD)) counts.set(word, (counts.get(word) ?? 0) + 1);
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [word, count] of counts) {
    words.push([...encoder.encode(word)]);
    freq.push(count);
  }
  const tokens: string[] = [...alphabet];

  // Pair → total count, and pair → the words holding it.
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1) => {
    const symbols = words[w];
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = pairKey(symbols[i], symbols[i + 1]);
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        const set = pairWords.get(key);
        if (set) set.add(w);
        else pairWords.set(key, new Set([w]));
      }
    }
  };
  words.forEach((_, w) => {
    addPairs(w, 1);
  });

  const learned: [string, string][] = [];
  while (learned.length < merges) {
    let best = -1;
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [key, count] of pairCount) {
      if (count > bestCount) {
        best = key;
        bestCount = count;
      }
    }
    if (best < 0) break;
    const a = Math.floor(best / 1_048_576);
    const b = best % 1_048_576;
    const merged = tokens.length;
    tokens.push(tokens[a] + tokens[b]);
    learned.push([tokens[a], tokens[b]]);
    for (const w of pairWords.get(best) ?? []) {
      addPairs(w, -1);
      const symbols = words[w];
      const next: number[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          next.push(merged);
          i++;
        } else {
          next.push(symbols[i]);
        }
      }
      words[w] = next;
      addPairs(w, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }
  return { merges: learned };
}

/** The special tokens Hone's tiny model knows: end of text, and ChatML's message delimiters. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** A ChatML chat template, as the tokenizer_config.json of many small chat models carries. */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * The Hugging Face tokenizer files for byte-level BPE `merges`: tokenizer.json (256 byte tokens, one token per
 * merge, then the special tokens), tokenizer_config.json with the chat template, and generation_config.json
 * with the stop tokens.
 */
export function tokenizerFiles(merges: [string, string][]): Record<string, string> {
  const vocab: Record<string, number> = {};
  for (const ch of bytesToUnicode()) vocab[ch] = Object.keys(vocab).length;
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const first = Object.keys(vocab).length;
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) => ({
      id: first + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    model_max_length: 2048,
    chat_template: CHAT_TEMPLATE,
  };
  return {
    'tokenizer.json': JSON.stringify(tokenizer),
    'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n`,
    'generation_config.json': `${JSON.stringify({ eos_token_id: [first + 2, first] }, null, 2)}\n`,
  };
}
