/**
 * The tokenizer's GGUF metadata, from the model folder's tokenizer.json (+ tokenizer_config.json, config.json,
 * generation_config.json, chat_template.jinja), as llama.cpp's converter writes it (convert_hf_to_gguf.py, gguf-py's
 * SpecialVocab). A byte-level BPE vocabulary (Llama 3, Qwen, SmolLM; _set_vocab_gpt2 / get_vocab_base):
 *   tokenizer.ggml.model "gpt2", tokenizer.ggml.pre (see pre-tokenizer.ts), tokens padded to the config's vocab_size
 *   with [PAD{i}] (unused), token types (control for special added tokens and ones that look special, user-defined
 *   for other added tokens, normal otherwise), merges ("a b"; pairs with their spaces written as U+0120);
 * a SentencePiece-style BPE with byte fallback (Gemma) as model "llama" with scores (sentencepiece.ts); either with
 * the special token ids, add_bos_token / add_eos_token, and the chat template. Other tokenizers are refused by name
 * of their file.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import type { ReadFile } from '../../checkpoint';
import { type GgufMetadata, gguf } from './format';
import { CHECK_TEXT, checkHash, KNOWN_HASHES, preTokenizerFromJson } from './pre-tokenizer';
import { isSentencePieceBpe, sentencePieceVocabulary } from './sentencepiece';
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

export { GgufTokenizerError, TokenType };

async function readJson(read: ReadFile, folder: string, name: string): Promise<Json | null> {
  const blob = await read(name);
  if (blob === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await blob.arrayBuffer()));
  } catch (error) {
    throw new GgufTokenizerError(`${folder}/${name}: not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(value)) throw new GgufTokenizerError(`${folder}/${name}: not a JSON object`);
  return value;
}

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object with `content`. */
function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return null;
}

export interface GgufTokenizerInfo {
  metadata: GgufMetadata;
  /** tokenizer.ggml.model: byte-level BPE, or SentencePiece */
  vocabulary: 'gpt2' | 'llama';
  /** tokenizer.ggml.pre */
  preTokenizer: string;
  /** How it was found: the converter's hash of CHECK_TEXT, or tokenizer.json (its pre_tokenizer, or its SentencePiece kind). */
  preTokenizerFrom: 'hash' | 'tokenizer.json';
  /** The converter's hash of CHECK_TEXT's tokens; null for SentencePiece, which the converter does not hash. */
  hash: string | null;
}

/**
 * The `tokenizer.*` metadata of the model folder read by `read` (`folder` names it in errors), for a model whose
 * config.json says `vocabSize` tokens.
 */
export async function ggufTokenizer(read: ReadFile, folder: string, vocabSize: number): Promise<GgufTokenizerInfo> {
  const file = `${folder}/tokenizer.json`;
  const tokenizerJson = await readJson(read, folder, 'tokenizer.json');
  if (tokenizerJson === null) {
    throw new GgufTokenizerError(`${folder}: no tokenizer.json (a GGUF file carries the model's tokenizer)`);
  }
  const model = tokenizerJson.model;
  const supported =
    'GGUF export supports byte-level BPE tokenizers (GPT-2 style, as Llama 3, Qwen and SmolLM use) and ' +
    "SentencePiece-style BPE with byte fallback (Gemma's)";
  if (!isObject(model) || (model.type !== undefined && model.type !== 'BPE') || !isObject(model.vocab)) {
    const type = isObject(model) ? String(model.type) : 'unknown';
    throw new GgufTokenizerError(`${file}: a ${type} tokenizer; ${supported}`);
  }
  const sentencePiece = isSentencePieceBpe(model);
  const decoder = tokenizerJson.decoder;
  if (!sentencePiece && (!isObject(decoder) || decoder.type !== 'ByteLevel')) {
    throw new GgufTokenizerError(`${file}: a BPE tokenizer without byte fallback or a ByteLevel decoder; ${supported}`);
  }
  const config = (await readJson(read, folder, 'tokenizer_config.json')) ?? {};
  const modelConfig = (await readJson(read, folder, 'config.json')) ?? {};
  const generationConfig = (await readJson(read, folder, 'generation_config.json')) ?? {};

  const added = addedTokens(tokenizerJson, file);
  let metadata: GgufMetadata;
  let about: Omit<GgufTokenizerInfo, 'metadata'>;
  if (sentencePiece) {
    metadata = sentencePieceVocabulary(tokenizerJson, added, vocabSize, file);
    about = { vocabulary: 'llama', preTokenizer: 'default', preTokenizerFrom: 'tokenizer.json', hash: null };
  } else {
    const pre = await preTokenizer(tokenizerJson, config, file);
    const { tokens, types } = vocabulary(model.vocab as Json, added, vocabSize, file);
    metadata = new Map([
      ['tokenizer.ggml.model', gguf.string('gpt2')],
      ['tokenizer.ggml.pre', gguf.string(pre.preTokenizer)],
      ['tokenizer.ggml.tokens', gguf.strings(tokens)],
      ['tokenizer.ggml.token_type', gguf.i32s(types)],
      ['tokenizer.ggml.merges', gguf.strings(merges(model.merges, file))],
    ]);
    about = { vocabulary: 'gpt2', ...pre };
  }
  for (const [key, value] of specialTokens(tokenizerJson, config, modelConfig, generationConfig, added, vocabSize)) {
    metadata.set(key, value);
  }
  if (!sentencePiece && typeof config.add_prefix_space === 'boolean') {
    metadata.set('tokenizer.ggml.add_space_prefix', gguf.bool(config.add_prefix_space));
  }
  const template = await chatTemplates(read, config, file);
  for (const [key, value] of template) metadata.set(key, value);
  return { metadata, ...about };
}

function addedTokens(tokenizerJson: Json, file: string): AddedToken[] {
  const list = tokenizerJson.added_tokens ?? [];
  if (!Array.isArray(list)) throw new GgufTokenizerError(`${file}: added_tokens is not a list`);
  return list.map((token, i) => {
    if (!isObject(token) || !Number.isInteger(token.id) || typeof token.content !== 'string') {
      throw new GgufTokenizerError(`${file}: added_tokens[${i}] has no integer id and string content`);
    }
    return { id: token.id as number, content: token.content, special: token.special === true };
  });
}

async function preTokenizer(
  tokenizerJson: Json,
  config: Json,
  file: string,
): Promise<Pick<GgufTokenizerInfo, 'preTokenizer' | 'preTokenizerFrom'> & { hash: string }> {
  let ids: number[];
  try {
    ids = new Tokenizer(tokenizerJson, config).encode(CHECK_TEXT).ids;
  } catch (error) {
    throw new GgufTokenizerError(`${file}: cannot build the tokenizer: ${(error as Error).message}`);
  }
  const hash = await checkHash(ids);
  const known = KNOWN_HASHES[hash];
  if (known) return { preTokenizer: known, preTokenizerFrom: 'hash', hash };
  const fromJson = preTokenizerFromJson(tokenizerJson);
  if (fromJson) return { preTokenizer: fromJson, preTokenizerFrom: 'tokenizer.json', hash };
  throw new GgufTokenizerError(
    `${file}: its pre-tokenizer is not one llama.cpp's converter knows (check hash ${hash}); supported: the ` +
      'GPT-2 ByteLevel pattern and those of Llama 3, Qwen2/2.5/3 and SmolLM',
  );
}

/** Every id below vocabSize: its token and type (get_vocab_base). */
function vocabulary(
  vocab: Json,
  added: AddedToken[],
  vocabSize: number,
  file: string,
): { tokens: string[]; types: Int32Array } {
  const tokens = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(vocabSize).fill(TokenType.UNUSED);
  for (const [token, id] of vocabEntries(vocab, vocabSize, file)) {
    tokens[id] = token;
    types[id] = TokenType.NORMAL;
  }
  for (const { id, text, type } of addedEntries(added, vocabSize, file)) {
    tokens[id] = text;
    types[id] = type;
  }
  return { tokens, types };
}

/** tokenizer.json's merges as "a b" strings; the [a, b] form has any space inside a part written as U+0120. */
export function merges(list: unknown, file = 'tokenizer.json'): string[] {
  return mergePairs(list, file).map((pair) => pair.map((part) => part.replaceAll(' ', '\u0120')).join(' '));
}

const SPECIAL_KEYS: Record<string, string> = {
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  sep: 'tokenizer.ggml.seperator_token_id',
  pad: 'tokenizer.ggml.padding_token_id',
  cls: 'tokenizer.ggml.cls_token_id',
  mask: 'tokenizer.ggml.mask_token_id',
  eot: 'tokenizer.ggml.eot_token_id',
};

/**
 * SpecialVocab: each special token of tokenizer_config.json that is an added token, then config.json's
 * `*_token_id`, then generation_config.json's bos / eos (the first of a list); BOS and EOS added as the
 * post-processor's template adds them, or as tokenizer_config.json's add_bos_token / add_eos_token says.
 */
function specialTokens(
  tokenizerJson: Json,
  config: Json,
  modelConfig: Json,
  generationConfig: Json,
  added: AddedToken[],
  vocabSize: number,
): GgufMetadata {
  const text: Record<string, string | null> = {};
  for (const type of ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'])
    text[type] = tokenText(config[`${type}_token`]);
  text.bos ??= text.cls;
  text.eos ??= text.sep;
  const add: Record<string, boolean> = {};
  const processors = isObject(tokenizerJson.post_processor)
    ? Array.isArray(tokenizerJson.post_processor.processors)
      ? (tokenizerJson.post_processor.processors as unknown[])
      : [tokenizerJson.post_processor]
    : [];
  for (const processor of processors) {
    if (!isObject(processor) || processor.type !== 'TemplateProcessing' || !Array.isArray(processor.single)) continue;
    const single = processor.single as unknown[];
    if (single.length < 2) continue;
    const special = (item: unknown) =>
      isObject(item) && isObject(item.SpecialToken) && typeof item.SpecialToken.id === 'string'
        ? item.SpecialToken.id
        : null;
    const first = special(single[0]);
    if (first !== null) add.bos = first === text.bos || first === text.cls;
    const last = special(single[single.length - 1]);
    if (last !== null) {
      if (last !== text.eos && text.eos !== null) text.eot = text.eos;
      text.eos = last;
      add.eos = true;
    }
  }
  for (const type of ['bos', 'eos'])
    if (typeof config[`add_${type}_token`] === 'boolean') add[type] = config[`add_${type}_token`] as boolean;

  const ids: Record<string, number> = {};
  const set = (type: string, id: unknown) => {
    if (ids[type] === undefined && Number.isInteger(id) && (id as number) >= 0 && (id as number) < vocabSize) {
      ids[type] = id as number;
    }
  };
  for (const [type, content] of Object.entries(text)) {
    if (content !== null) set(type, added.find((token) => token.content === content)?.id);
  }
  for (const type of Object.keys(SPECIAL_KEYS)) set(type, modelConfig[`${type}_token_id`]);
  for (const type of ['bos', 'eos']) {
    const id = generationConfig[`${type}_token_id`];
    set(type, Array.isArray(id) ? id[0] : id);
  }

  const metadata: GgufMetadata = new Map();
  for (const [type, key] of Object.entries(SPECIAL_KEYS))
    if (ids[type] !== undefined) metadata.set(key, gguf.u32(ids[type]));
  metadata.set('tokenizer.ggml.add_bos_token', gguf.bool(add.bos ?? false));
  if (add.eos !== undefined) metadata.set('tokenizer.ggml.add_eos_token', gguf.bool(add.eos));
  return metadata;
}

/** tokenizer_config.json's chat_template (a string, or named templates), else chat_template.jinja. */
async function chatTemplates(read: ReadFile, config: Json, file: string): Promise<GgufMetadata> {
  const metadata: GgufMetadata = new Map();
  const inline = config.chat_template;
  if (typeof inline === 'string') {
    metadata.set('tokenizer.chat_template', gguf.string(inline));
  } else if (Array.isArray(inline)) {
    const names: string[] = [];
    for (const entry of inline) {
      if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
        throw new GgufTokenizerError(
          `${file.replace(/tokenizer\.json$/, 'tokenizer_config.json')}: a chat_template entry has no name and template`,
        );
      }
      if (entry.name === 'default') metadata.set('tokenizer.chat_template', gguf.string(entry.template));
      else {
        metadata.set(`tokenizer.chat_template.${entry.name}`, gguf.string(entry.template));
        names.push(entry.name);
      }
    }
    if (names.length > 0) metadata.set('tokenizer.chat_templates', gguf.strings(names));
  } else {
    const jinja = await read('chat_template.jinja');
    if (jinja !== null) metadata.set('tokenizer.chat_template', gguf.string(await jinja.text()));
  }
  return metadata;
}
