/**
 * `tokenizer.ggml.pre`: which pre-tokenizer (the regex that splits text before BPE) llama.cpp runs for a byte-level
 * BPE vocabulary. llama.cpp's converter (convert_hf_to_gguf.py, get_vocab_base_pre) tells them apart by encoding a
 * fixed text, `CHECK_TEXT`, and hashing the token ids (sha256 of Python's `str(list)`); the hashes of the families
 * Hone trains are in `KNOWN_HASHES`. A vocabulary of its own (Hone's hone-tiny, a fine-tune that retrained its
 * tokenizer) hashes to something new: then the pre-tokenizer is recognized from tokenizer.json itself, when it is
 * one of these families' exactly (GPT-2's ByteLevel regex, Llama 3's or Qwen2's Split regex, SmolLM's digits).
 */

/** get_vocab_base_pre's `chktxt`, character for character. */
export const CHECK_TEXT =
  '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1F680} (normal) \u{1F636}\u200d\u{1F32B}\uFE0F (multiple emojis ' +
  'concatenated) \u2705 \u{1F999}\u{1F999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 ' +
  '\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\u{1F601} ' +
  '?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= ' +
  "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 ''''''```````" +
  "\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like " +
  "some tea? We'Ve a'lL";

/** The converter's hashes for the families Hone trains (and GPT-2's own). */
export const KNOWN_HASHES: Record<string, string> = {
  // meta-llama/Meta-Llama-3-8B (and Llama 3.1 / 3.2, whose tokenizer encodes this text alike)
  '0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5': 'llama-bpe',
  // abacusai/Smaug-Llama-3-70B-Instruct: Llama 3's vocabulary without the BOS post-processor
  c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d: 'smaug-bpe',
  // Qwen/Qwen1.5-7B (Qwen2, Qwen2.5 and Qwen3 share it)
  e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea: 'qwen2',
  // Qwen/Qwen3-Embedding-0.6B
  d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c: 'qwen2',
  // HuggingFaceTB/SmolLM-135M (SmolLM2 shares the tokenizer)
  '855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249': 'smollm',
  // openai-community/gpt2
  '3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454': 'gpt-2',
};

/** Llama 3's Split pattern (tokenizer.json), which llama.cpp's `llama-bpe` runs. */
const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's (digits one by one), llama.cpp's `qwen2`. */
const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** sha256 of the ids as Python prints a list of ints: `[1, 2, 3]`. */
export async function checkHash(ids: readonly number[]): Promise<string> {
  const text = `[${ids.join(', ')}]`;
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null;

/** ByteLevel with GPT-2's own regex and no prefix space. */
function isGpt2ByteLevel(step: unknown): boolean {
  return isObject(step) && step.type === 'ByteLevel' && step.use_regex !== false && step.add_prefix_space !== true;
}

/** ByteLevel that only maps bytes (a Split before it did the splitting). */
function isPlainByteLevel(step: unknown): boolean {
  return isObject(step) && step.type === 'ByteLevel' && step.use_regex === false && step.add_prefix_space !== true;
}

function splitRegex(step: unknown): string | null {
  if (!isObject(step) || step.type !== 'Split' || step.behavior !== 'Isolated' || step.invert === true) return null;
  const pattern = step.pattern;
  return isObject(pattern) && typeof pattern.Regex === 'string' ? pattern.Regex : null;
}

/**
 * The llama.cpp pre-tokenizer a tokenizer.json's own normalizer and pre_tokenizer amount to, or null when they are
 * not one of the families recognized here.
 */
export function preTokenizerFromJson(tokenizerJson: Json): string | null {
  if (tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined) return null;
  const pre = tokenizerJson.pre_tokenizer;
  if (isGpt2ByteLevel(pre)) return 'gpt-2';
  if (!isObject(pre) || pre.type !== 'Sequence' || !Array.isArray(pre.pretokenizers)) return null;
  const steps = pre.pretokenizers as unknown[];
  if (steps.length !== 2) return null;
  const [first, second] = steps;
  if (isObject(first) && first.type === 'Digits' && first.individual_digits === true && isGpt2ByteLevel(second)) {
    return 'smollm';
  }
  if (!isPlainByteLevel(second)) return null;
  const regex = splitRegex(first);
  if (regex === LLAMA3_REGEX) return 'llama-bpe';
  if (regex === QWEN2_REGEX) return 'qwen2';
  return null;
}
