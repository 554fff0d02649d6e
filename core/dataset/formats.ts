/**
 * The shapes datasets come in, how Hone recognises them, and each record turned into one of four examples the
 * methods use: raw text, a conversation, a preference pair, or an RL prompt. A record that does not fit its shape
 * gets a reason that names the field (and the message) at fault.
 */

export const DATASET_FORMATS = [
  'text',
  'alpaca',
  'prompt_completion',
  'messages',
  'sharegpt',
  'preference',
  'rl_prompts',
] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export type Role = 'system' | 'user' | 'assistant';

export interface Message {
  role: Role;
  content: string;
  /** OpenAI's per-message weight: 0 means this assistant message carries no loss. */
  weight?: 0 | 1;
}

/** The prompt as a rule or a table reads it: the last user turn (the last message where none is a user's). */
export function lastUserTurn(messages: readonly Message[]): string {
  return (messages.findLast((m) => m.role === 'user') ?? messages.at(-1))?.content ?? '';
}

export type Example =
  | { kind: 'text'; text: string }
  | { kind: 'chat'; messages: Message[] }
  | { kind: 'preference'; prompt: Message[]; chosen: Message[]; rejected: Message[] }
  | { kind: 'prompt'; prompt: Message[]; reference?: string };

export interface FieldSpec {
  name: string;
  required: boolean;
  /** Column names that play this part, most usual first; detection picks the first one the records have. */
  aliases: string[];
}

export interface FormatSpec {
  label: string;
  fields: FieldSpec[];
}

export const FORMAT_SPECS: Record<DatasetFormat, FormatSpec> = {
  text: { label: 'Raw text', fields: [{ name: 'text', required: true, aliases: ['text', 'content', 'document'] }] },
  alpaca: {
    label: 'Alpaca (instruction, input, output)',
    fields: [
      { name: 'instruction', required: true, aliases: ['instruction'] },
      { name: 'input', required: false, aliases: ['input', 'context'] },
      { name: 'output', required: true, aliases: ['output', 'response'] },
    ],
  },
  prompt_completion: {
    label: 'Prompt and completion',
    fields: [
      { name: 'prompt', required: true, aliases: ['prompt', 'question', 'query'] },
      { name: 'completion', required: true, aliases: ['completion', 'response', 'answer', 'output'] },
      { name: 'system', required: false, aliases: ['system', 'system_prompt'] },
    ],
  },
  messages: {
    label: 'Chat messages (role, content)',
    fields: [{ name: 'messages', required: true, aliases: ['messages', 'conversations', 'conversation', 'chat'] }],
  },
  sharegpt: {
    label: 'ShareGPT conversations (from, value)',
    fields: [{ name: 'conversations', required: true, aliases: ['conversations', 'conversation', 'messages'] }],
  },
  preference: {
    label: 'Preference pairs (prompt, chosen, rejected)',
    fields: [
      { name: 'prompt', required: false, aliases: ['prompt', 'input', 'question'] },
      { name: 'chosen', required: true, aliases: ['chosen', 'preferred_output'] },
      { name: 'rejected', required: true, aliases: ['rejected', 'non_preferred_output'] },
    ],
  },
  rl_prompts: {
    label: 'RL prompts (prompt, optional reference answer)',
    fields: [
      { name: 'prompt', required: true, aliases: ['prompt', 'question', 'query', 'input'] },
      { name: 'reference', required: false, aliases: ['reference', 'answer', 'solution', 'ground_truth'] },
    ],
  },
};

/** Which column plays each field of the format: field name → column name (absent: the field is not used). */
export type FieldMapping = Record<string, string>;

const has = (keys: Set<string>, aliases: string[]) => aliases.some((a) => keys.has(a));
const aliasesOf = (format: DatasetFormat, field: string) =>
  FORMAT_SPECS[format].fields.find((f) => f.name === field)?.aliases ?? [];

/** A list field's first entry says which chat convention it follows. */
function conversationStyle(value: unknown): 'messages' | 'sharegpt' | null {
  const list = typeof value === 'string' ? parseJsonList(value) : value;
  if (!Array.isArray(list) || list.length === 0) return null;
  const first = list[0];
  if (typeof first !== 'object' || first === null) return null;
  if ('role' in first) return 'messages';
  if ('from' in first) return 'sharegpt';
  return null;
}

/** The format one record looks like, the most specific first; null when it looks like none. */
export function detectRecordFormat(value: Record<string, unknown> | string): DatasetFormat | null {
  if (typeof value === 'string') return 'text';
  const keys = new Set(Object.keys(value));
  if (has(keys, aliasesOf('preference', 'chosen')) && has(keys, aliasesOf('preference', 'rejected'))) {
    return 'preference';
  }
  for (const key of ['messages', 'conversations', 'conversation', 'chat']) {
    const style = keys.has(key) ? conversationStyle(value[key]) : null;
    if (style) return style;
  }
  if (keys.has('instruction')) return 'alpaca';
  const hasPrompt = has(keys, aliasesOf('prompt_completion', 'prompt'));
  if (hasPrompt && has(keys, aliasesOf('prompt_completion', 'completion'))) return 'prompt_completion';
  if (has(keys, aliasesOf('rl_prompts', 'prompt'))) return 'rl_prompts';
  if (has(keys, aliasesOf('text', 'text'))) return 'text';
  return null;
}

/** The format most of the sample records look like, or null when none does. */
export function detectFormat(sample: (Record<string, unknown> | string)[]): DatasetFormat | null {
  const votes = new Map<DatasetFormat, number>();
  for (const value of sample) {
    const format = detectRecordFormat(value);
    if (format) votes.set(format, (votes.get(format) ?? 0) + 1);
  }
  let best: DatasetFormat | null = null;
  for (const [format, count] of votes) if (best === null || count > (votes.get(best) ?? 0)) best = format;
  return best;
}

/** For each field of the format, the first of its aliases the sample's records have. */
export function defaultMapping(format: DatasetFormat, sample: (Record<string, unknown> | string)[]): FieldMapping {
  const keys = new Set<string>();
  for (const value of sample) if (typeof value !== 'string') for (const key of Object.keys(value)) keys.add(key);
  const mapping: FieldMapping = {};
  for (const field of FORMAT_SPECS[format].fields) {
    const column = field.aliases.find((a) => keys.has(a));
    if (column !== undefined) mapping[field.name] = column;
  }
  return mapping;
}

/** Why a record does not fit; thrown inside normalization and turned into the record's reason. */
class RecordError extends Error {}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}

function parseJsonList(text: string): unknown {
  if (!text.trimStart().startsWith('[')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The column a field maps to, or a "missing field" reason; optional fields give undefined. */
function field(record: Record<string, unknown>, mapping: FieldMapping, spec: FieldSpec): unknown {
  const column = mapping[spec.name];
  const value = column === undefined ? undefined : record[column];
  if ((value === undefined || value === null) && spec.required) {
    throw new RecordError(column === undefined ? `no column is mapped to "${spec.name}"` : `missing field "${column}"`);
  }
  return value;
}

function text(value: unknown, where: string, allowEmpty = false): string {
  if (typeof value !== 'string')
    throw new RecordError(`wrong type: ${where} should be text, found ${describeType(value)}`);
  if (!allowEmpty && value.trim() === '') throw new RecordError(`empty content in ${where}`);
  return value;
}

const SHAREGPT_ROLES: Record<string, Role> = {
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  chatgpt: 'assistant',
  bard: 'assistant',
  bing: 'assistant',
  model: 'assistant',
};

const CHAT_ROLES: Record<string, Role> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
};

/** OpenAI content may be a list of parts; the text parts are joined and any other part is refused. */
function messageContent(value: unknown, where: string): string {
  if (Array.isArray(value)) {
    const parts = value.map((part, i) => {
      if (typeof part === 'object' && part !== null && (part as { type?: unknown }).type === 'text') {
        return text((part as { text?: unknown }).text, `${where}, part ${i + 1}`);
      }
      throw new RecordError(`${where}, part ${i + 1}: only text parts can be trained on`);
    });
    return parts.join('');
  }
  return text(value, where);
}

/** A list of messages in either convention; `where` names the field in reasons. */
function messageList(value: unknown, where: string, style: 'messages' | 'sharegpt'): Message[] {
  const list = typeof value === 'string' ? parseJsonList(value) : value;
  if (!Array.isArray(list))
    throw new RecordError(`wrong type: "${where}" should be a list of messages, found ${describeType(list)}`);
  if (list.length === 0) throw new RecordError(`"${where}" has no messages`);
  return list.map((entry, i) => {
    const at = `"${where}" message ${i + 1}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new RecordError(`wrong type: ${at} should be an object, found ${describeType(entry)}`);
    }
    const m = entry as Record<string, unknown>;
    const roleKey = style === 'messages' ? 'role' : 'from';
    const roleName = m[roleKey];
    if (typeof roleName !== 'string') throw new RecordError(`missing field "${roleKey}" in ${at}`);
    const role = (style === 'messages' ? CHAT_ROLES : SHAREGPT_ROLES)[roleName.toLowerCase()];
    if (!role) throw new RecordError(`unknown role "${roleName}" in ${at} (Hone trains on system, user and assistant)`);
    const content = messageContent(style === 'messages' ? m.content : m.value, at);
    const message: Message = { role, content };
    if (m.weight !== undefined) {
      if (m.weight !== 0 && m.weight !== 1)
        throw new RecordError(`wrong type: ${at} has weight ${JSON.stringify(m.weight)}; it must be 0 or 1`);
      if (role !== 'assistant') throw new RecordError(`${at}: only assistant messages take a weight`);
      message.weight = m.weight;
    }
    return message;
  });
}

function checkConversation(messages: Message[], where: string): Message[] {
  if (!messages.some((m) => m.role === 'assistant' && m.weight !== 0)) {
    throw new RecordError(`${where} has no assistant message to learn from`);
  }
  return messages;
}

/** A prompt or an answer given as text or as a message list (TRL's conversational form). */
function turns(value: unknown, where: string, role: Role): Message[] {
  const list = typeof value === 'string' ? parseJsonList(value) : value;
  if (typeof list === 'string') return [{ role, content: text(list, `"${where}"`) }];
  if (Array.isArray(list)) return messageList(list, where, 'messages');
  // OpenAI's preference format wraps the prompt: { "messages": [...] }.
  if (typeof list === 'object' && list !== null && 'messages' in list) {
    return messageList((list as { messages: unknown }).messages, `${where}.messages`, 'messages');
  }
  throw new RecordError(`wrong type: "${where}" should be text or a list of messages, found ${describeType(list)}`);
}

const sameMessages = (a: Message[], b: Message[]) =>
  a.length === b.length && a.every((m, i) => m.role === b[i].role && m.content === b[i].content);

function preference(record: Record<string, unknown>, mapping: FieldMapping): Example {
  const [promptSpec, chosenSpec, rejectedSpec] = FORMAT_SPECS.preference.fields;
  const promptValue = field(record, mapping, promptSpec);
  let chosen = turns(field(record, mapping, chosenSpec), mapping.chosen, 'assistant');
  let rejected = turns(field(record, mapping, rejectedSpec), mapping.rejected, 'assistant');
  let prompt: Message[];
  if (promptValue === undefined || promptValue === null) {
    // Implicit prompt: both answers are whole conversations that share everything but their last turns.
    let shared = 0;
    while (
      shared < Math.min(chosen.length, rejected.length) - 1 &&
      chosen[shared].role === rejected[shared].role &&
      chosen[shared].content === rejected[shared].content
    ) {
      shared++;
    }
    if (shared === 0)
      throw new RecordError(`no prompt: map a "prompt" column, or give chosen and rejected a shared start`);
    prompt = chosen.slice(0, shared);
    chosen = chosen.slice(shared);
    rejected = rejected.slice(shared);
  } else {
    prompt = turns(promptValue, mapping.prompt, 'user');
  }
  if (sameMessages(chosen, rejected)) throw new RecordError('the chosen and rejected answers are identical');
  for (const [name, answer] of [
    ['chosen', chosen],
    ['rejected', rejected],
  ] as const) {
    if (!answer.some((m) => m.role === 'assistant'))
      throw new RecordError(`"${mapping[name]}" has no assistant message`);
  }
  return { kind: 'preference', prompt, chosen, rejected };
}

/** One record as an example of the format under the mapping, or the reason it is not one. */
export function normalizeRecord(
  value: Record<string, unknown> | string,
  format: DatasetFormat,
  mapping: FieldMapping,
): { example: Example } | { reason: string } {
  try {
    return { example: toExample(value, format, mapping) };
  } catch (error) {
    if (error instanceof RecordError) return { reason: error.message };
    throw error;
  }
}

function toExample(value: Record<string, unknown> | string, format: DatasetFormat, mapping: FieldMapping): Example {
  if (typeof value === 'string') {
    if (format !== 'text') throw new RecordError(`a plain text file is raw text, not ${FORMAT_SPECS[format].label}`);
    return { kind: 'text', text: text(value, 'the file') };
  }
  const fields = FORMAT_SPECS[format].fields;
  const get = (name: string) => field(value, mapping, fields.find((f) => f.name === name) as FieldSpec);
  const where = (name: string) => `"${mapping[name]}"`;
  switch (format) {
    case 'text':
      return { kind: 'text', text: text(get('text'), where('text')) };
    case 'alpaca': {
      const instruction = text(get('instruction'), where('instruction'));
      const input = get('input');
      const inputText = input === undefined || input === null ? '' : text(input, where('input'), true);
      const user = inputText.trim() === '' ? instruction : `${instruction}\n\n${inputText}`;
      return {
        kind: 'chat',
        messages: [
          { role: 'user', content: user },
          { role: 'assistant', content: text(get('output'), where('output')) },
        ],
      };
    }
    case 'prompt_completion': {
      const system = get('system');
      const messages: Message[] = [
        ...(system === undefined || system === null || system === ''
          ? []
          : [{ role: 'system' as const, content: text(system, where('system')) }]),
        ...turns(get('prompt'), mapping.prompt, 'user'),
        ...turns(get('completion'), mapping.completion, 'assistant'),
      ];
      return { kind: 'chat', messages: checkConversation(messages, 'the record') };
    }
    case 'messages':
    case 'sharegpt': {
      const name = format === 'messages' ? 'messages' : 'conversations';
      const messages = messageList(get(name), mapping[name], format);
      return { kind: 'chat', messages: checkConversation(messages, where(name)) };
    }
    case 'preference':
      return preference(value, mapping);
    case 'rl_prompts': {
      const reference = get('reference');
      const example: Example = { kind: 'prompt', prompt: turns(get('prompt'), mapping.prompt, 'user') };
      if (reference !== undefined && reference !== null) {
        example.reference = typeof reference === 'number' ? String(reference) : text(reference, where('reference'));
      }
      return example;
    }
  }
}
