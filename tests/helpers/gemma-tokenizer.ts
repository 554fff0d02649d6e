/**
 * A small tokenizer shaped like Gemma 3's, in the Hugging Face format: SentencePiece-style BPE (spaces as ▁, byte
 * fallback to <0xXX> tokens), <pad> <eos> <bos> <unk> at ids 0-3, a <bos> added in front of every text, the turn
 * markers <start_of_turn> and <end_of_turn> (a stop token beside <eos>), and Gemma 3's chat template. For tests of
 * Gemma models without the real tokenizer, which no test may download.
 */

/** Gemma 3's chat template (google/gemma-3-*-it), text-only. */
export const GEMMA_CHAT_TEMPLATE = `{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
`;

const SPECIALS = ['<pad>', '<eos>', '<bos>', '<unk>'];
const TURNS = ['<start_of_turn>', '<end_of_turn>'];
const MERGES: [string, string][] = [
  ['▁', 't'],
  ['h', 'e'],
  ['▁t', 'he'],
  ['▁', 'a'],
  ['i', 'n'],
  ['▁', 'c'],
  ['o', 'd'],
  ['▁c', 'od'],
  ['▁cod', 'e'],
];

/** Ids of the turn markers, and how many ids the tokenizer uses (a model's vocabulary must hold them). */
export function gemmaTokenizerSize(): { startOfTurn: number; endOfTurn: number; size: number } {
  const pieces = 4 + 256 + 1 + 94 + MERGES.length;
  return { startOfTurn: pieces, endOfTurn: pieces + 1, size: pieces + 2 };
}

/** tokenizer.json, tokenizer_config.json and generation_config.json of the Gemma-shaped tokenizer. */
export function gemmaTokenizerFiles(): Record<string, string> {
  const vocab: Record<string, number> = {};
  const add = (piece: string) => {
    vocab[piece] = Object.keys(vocab).length;
  };
  for (const piece of SPECIALS) add(piece);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  add('▁');
  for (let c = 33; c < 127; c++) add(String.fromCharCode(c));
  for (const [a, b] of MERGES) add(a + b);
  const { startOfTurn, endOfTurn } = gemmaTokenizerSize();
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      ...SPECIALS.map((content, id) => special(id, content)),
      special(startOfTurn, TURNS[0]),
      special(endOfTurn, TURNS[1]),
    ],
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<bos>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<bos>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<bos>': { id: '<bos>', ids: [2], tokens: ['<bos>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: { ...vocab, [TURNS[0]]: startOfTurn, [TURNS[1]]: endOfTurn },
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = {
    tokenizer_class: 'GemmaTokenizer',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<bos>',
    eos_token: '<eos>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    model_max_length: 32768,
    chat_template: GEMMA_CHAT_TEMPLATE,
  };
  return {
    'tokenizer.json': JSON.stringify(tokenizer),
    'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n`,
    'generation_config.json': `${JSON.stringify({ bos_token_id: 2, eos_token_id: [1, endOfTurn], pad_token_id: 0 }, null, 2)}\n`,
  };
}
