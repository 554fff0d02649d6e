/**
 * A model's tokenizer and chat template, from its own files: `tokenizer.json` + `tokenizer_config.json` through
 * @huggingface/tokenizers, the chat template (tokenizer_config.json's `chat_template`, or `chat_template.jinja`)
 * through @huggingface/jinja, and the stop tokens from `generation_config.json` and the tokenizer config.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ReadFile } from './checkpoint';

export interface ChatMessage {
  role: string;
  content: string;
}

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object with `content`. */
function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/**
 * For models that ship no chat template (base models): plain "User:" / "Assistant:" turns. It writes no end-of-turn
 * token, so the dataset renderer adds EOS after each answer and the model learns where answers stop.
 */
export const PLAIN_CHAT_TEMPLATE =
  "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] + '\\n\\n' }}" +
  "{% elif m['role'] == 'user' %}{{ 'User: ' + m['content'] + '\\n' }}" +
  "{% else %}{{ 'Assistant: ' + m['content'] + '\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

const plainTemplate = new Template(PLAIN_CHAT_TEMPLATE);

export class ModelTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template | null;
  /** Token ids that end a generation: generation_config's eos_token_id(s) and the tokenizer's eos_token. */
  readonly eosTokenIds: number[];
  readonly specialTokens: Record<string, string>;

  constructor(
    tokenizerJson: object,
    readonly config: Record<string, unknown>,
    readonly chatTemplate: string | null,
    generationConfig: Record<string, unknown> | null,
    source: string,
  ) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new TokenizerError(`${source}/tokenizer.json: cannot build the tokenizer: ${(error as Error).message}`);
    }
    try {
      this.template = chatTemplate === null ? null : new Template(chatTemplate);
    } catch (error) {
      throw new TokenizerError(`${source}: the chat template does not parse: ${(error as Error).message}`);
    }
    this.specialTokens = {};
    for (const name of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const text = tokenText(config[name]);
      if (text !== null) this.specialTokens[name] = text;
    }
    const ids = new Set<number>();
    const fromGeneration = generationConfig?.eos_token_id;
    for (const id of Array.isArray(fromGeneration) ? fromGeneration : [fromGeneration]) {
      if (Number.isInteger(id)) ids.add(id as number);
    }
    const eos = this.specialTokens.eos_token;
    const eosId = eos === undefined ? undefined : this.tokenizer.token_to_id(eos);
    if (eosId !== undefined) ids.add(eosId);
    this.eosTokenIds = [...ids];
  }

  /** The token that ends a document or an answer: the tokenizer's eos_token, else the first stop token. */
  get eosTokenId(): number | undefined {
    const eos = this.specialTokens.eos_token;
    return (eos === undefined ? undefined : this.tokenizer.token_to_id(eos)) ?? this.eosTokenIds[0];
  }

  /** What fills short sequences: the pad token, else EOS, else id 0 (padding is never labelled, so any id works). */
  get padTokenId(): number {
    const pad = this.specialTokens.pad_token;
    return (pad === undefined ? undefined : this.tokenizer.token_to_id(pad)) ?? this.eosTokenId ?? 0;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    // The library refuses an empty list; nothing decodes to nothing.
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /**
   * The conversation as the model was trained to read it; with `addGenerationPrompt`, ready for its answer. A model
   * without a chat template gets PLAIN_CHAT_TEMPLATE.
   */
  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    return (this.template ?? plainTemplate).render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      ...this.specialTokens,
    });
  }
}

async function readJson(read: ReadFile, folder: string, name: string): Promise<Record<string, unknown> | null> {
  const blob = await read(name);
  if (blob === null) return null;
  try {
    const value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await blob.arrayBuffer()));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value;
  } catch (error) {
    throw new TokenizerError(`${folder}/${name}: ${(error as Error).message}`);
  }
}

/** The chat template wherever the model keeps it; a list of named templates picks `default`. */
async function findChatTemplate(
  read: ReadFile,
  folder: string,
  config: Record<string, unknown>,
): Promise<string | null> {
  const inline = config.chat_template;
  if (typeof inline === 'string') return inline;
  if (Array.isArray(inline)) {
    const named = inline as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (typeof chosen?.template === 'string') return chosen.template;
    throw new TokenizerError(`${folder}/tokenizer_config.json: chat_template list has no usable template`);
  }
  const file = await read('chat_template.jinja');
  return file === null ? null : file.text();
}

export async function loadTokenizer(read: ReadFile, folder: string): Promise<ModelTokenizer> {
  const tokenizerJson = await readJson(read, folder, 'tokenizer.json');
  if (!tokenizerJson) throw new TokenizerError(`${folder}: no tokenizer.json`);
  const config = (await readJson(read, folder, 'tokenizer_config.json')) ?? {};
  const generation = await readJson(read, folder, 'generation_config.json');
  return new ModelTokenizer(tokenizerJson, config, await findChatTemplate(read, folder, config), generation, folder);
}
