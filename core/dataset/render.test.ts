import { describe, expect, it } from 'vitest';
import { tinyTokenizerFiles } from '../../tests/helpers/tiny-tokenizer';
import type { ReadFile } from '../checkpoint';
import { loadTokenizer, type ModelTokenizer } from '../tokenizer';
import { lengthStats, packBlocks, padBatch, splitTrainValidation } from './batches';
import type { Message } from './formats';
import { IGNORE_INDEX, renderChat, renderExample, renderPreference, renderPrompt, renderText } from './render';
import { previewSegments } from './tokenize-dataset';

function tokenizerWith(overrides: Record<string, string | null>): Promise<ModelTokenizer> {
  const files: Record<string, string | null> = { ...tinyTokenizerFiles(), ...overrides };
  const read: ReadFile = async (name) => (typeof files[name] === 'string' ? new Blob([files[name]]) : null);
  return loadTokenizer(read, 'tiny');
}

const conversation: Message[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello there.', weight: 0 },
  { role: 'user', content: 'Name?' },
  { role: 'assistant', content: 'Hone.' },
];

describe('rendering conversations', () => {
  it('puts loss on the answers and their end-of-turn tokens only, token by token', async () => {
    const tokenizer = await tokenizerWith({});
    const { ids, labels } = renderChat(tokenizer, conversation);
    const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
    const pieces: [string, boolean][] = [
      ['<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false],
      ['Hello there.<|im_end|>\n', false], // weight 0
      ['<|im_start|>user\nName?<|im_end|>\n<|im_start|>assistant\n', false],
      ['Hone.<|im_end|>\n', true],
    ];
    const expectedIds = pieces.flatMap(([text]) => encode(text));
    const expectedLabels = pieces.flatMap(([text, loss]) => encode(text).map((id) => (loss ? id : IGNORE_INDEX)));
    expect(ids).toEqual(expectedIds);
    expect(labels).toEqual(expectedLabels);
    expect(tokenizer.decode(ids)).toBe(tokenizer.applyChatTemplate(conversation));
    expect(
      previewSegments(tokenizer, { ids, labels })
        .filter((s) => s.loss)
        .map((s) => s.text),
    ).toEqual(['Hone.<|im_end|>\n']);
  });

  it('trains on the prompt too when asked, but never on a weight-0 answer', async () => {
    const tokenizer = await tokenizerWith({});
    const { ids, labels } = renderChat(tokenizer, conversation, { trainOnPrompt: true });
    const segments = previewSegments(tokenizer, { ids, labels });
    expect(segments.map((s) => [s.text, s.loss])).toEqual([
      ['<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', true],
      ['Hello there.<|im_end|>\n', false],
      ['<|im_start|>user\nName?<|im_end|>\n<|im_start|>assistant\nHone.<|im_end|>\n', true],
    ]);
  });

  it('adds EOS after each answer when the template writes no stop token (a model without a template)', async () => {
    const config = JSON.parse(tinyTokenizerFiles()['tokenizer_config.json']);
    delete config.chat_template;
    const tokenizer = await tokenizerWith({ 'tokenizer_config.json': JSON.stringify(config) });
    expect(tokenizer.hasChatTemplate).toBe(false);
    const { ids, labels } = renderChat(tokenizer, [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Yo' },
      { role: 'user', content: 'Again' },
      { role: 'assistant', content: 'Yo' },
    ]);
    const eos = tokenizer.eosTokenId as number;
    expect(eos).toBe(tokenizer.tokenToId('<|im_end|>'));
    const segments = previewSegments(tokenizer, { ids, labels });
    expect(segments.map((s) => [s.text, s.loss])).toEqual([
      ['User: Hi\nAssistant: ', false],
      ['Yo\n<|im_end|>', true],
      ['User: Again\nAssistant: ', false],
      ['Yo\n<|im_end|>', true],
    ]);
  });

  it('finds answers by content when the template renders earlier turns differently from the last', async () => {
    // Like Qwen3, which drops thinking blocks from earlier turns: only the last answer gets a marker.
    const template =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' }}{% if loop.last and m['role'] == 'assistant' %}" +
      "{{ '[final] ' }}{% endif %}{{ m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const config = { ...JSON.parse(tinyTokenizerFiles()['tokenizer_config.json']), chat_template: template };
    const tokenizer = await tokenizerWith({ 'tokenizer_config.json': JSON.stringify(config) });
    const { ids, labels } = renderChat(tokenizer, [
      { role: 'user', content: 'A' },
      { role: 'assistant', content: 'first' },
      { role: 'user', content: 'B' },
      { role: 'assistant', content: 'second' },
    ]);
    expect(
      previewSegments(tokenizer, { ids, labels })
        .filter((s) => s.loss)
        .map((s) => s.text),
    ).toEqual(['first<|im_end|>', '[final] second<|im_end|>\n']);
  });

  it('renders documents, prompts and preference pairs', async () => {
    const tokenizer = await tokenizerWith({});
    const eos = tokenizer.eosTokenId as number;
    expect(renderText(tokenizer, 'hello the')).toEqual([...tokenizer.encode('hello the'), eos]);
    // A long document is tokenized in paragraph-aligned pieces that decode back to the whole.
    const book = Array.from({ length: 3000 }, (_, i) => `Paragraph ${i} of the book.`).join('\n\n');
    const ids = renderText(tokenizer, book);
    expect(tokenizer.decode(ids.slice(0, -1))).toBe(book);

    const prompt: Message[] = [{ role: 'user', content: 'Q' }];
    expect(tokenizer.decode(renderPrompt(tokenizer, prompt))).toBe(
      '<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n',
    );
    const pair = renderPreference(tokenizer, {
      kind: 'preference',
      prompt,
      chosen: [{ role: 'assistant', content: 'yes' }],
      rejected: [{ role: 'assistant', content: 'no' }],
    });
    expect(pair.chosen.ids.slice(0, pair.prompt.length)).toEqual(pair.prompt);
    expect(pair.rejected.ids.slice(0, pair.prompt.length)).toEqual(pair.prompt);
    expect(tokenizer.decode(pair.chosen.labels.filter((l) => l !== IGNORE_INDEX))).toBe('yes<|im_end|>\n');
    expect(tokenizer.decode(pair.rejected.labels.filter((l) => l !== IGNORE_INDEX))).toBe('no<|im_end|>\n');
    const [rl] = renderExample(tokenizer, { kind: 'prompt', prompt, reference: 'A' });
    expect(rl.ids).toEqual(pair.prompt);
    expect(rl.labels.every((l) => l === IGNORE_INDEX)).toBe(true);
  });
});

describe('batches', () => {
  it('packs documents into full blocks and keeps the remainder', () => {
    const blocks = packBlocks([[1, 2, 3], [4, 5, 6, 7], [8]], 3);
    expect(blocks.map((b) => b.ids)).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8],
    ]);
    expect(blocks.every((b) => b.labels.join() === b.ids.join())).toBe(true);
    expect(() => packBlocks([[1]], 1)).toThrow('at least 2 tokens');
  });

  it('truncates and pads to one shape, padding never labelled', () => {
    const batch = padBatch(
      [
        { ids: [1, 2, 3, 4, 5], labels: [-100, 2, 3, 4, 5] },
        { ids: [6, 7], labels: [-100, 7] },
      ],
      4,
      0,
    );
    expect(batch.tokens).toEqual([
      [1, 2, 3, 4],
      [6, 7, 0, 0],
    ]);
    expect(batch.labels).toEqual([
      [-100, 2, 3, 4],
      [-100, 7, -100, -100],
    ]);
  });

  it('splits reproducibly by seed, by fraction or count, and always leaves training data', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const a = splitTrainValidation(items, 0.1, 7);
    expect(a.validation).toHaveLength(10);
    expect(a.train).toHaveLength(90);
    expect(new Set([...a.train, ...a.validation]).size).toBe(100);
    expect(splitTrainValidation(items, 0.1, 7)).toEqual(a);
    expect(splitTrainValidation(items, 0.1, 8).validation).not.toEqual(a.validation);
    expect(splitTrainValidation(items, 25, 7).validation).toHaveLength(25);
    expect(splitTrainValidation([1], 0.5, 7)).toEqual({ train: [1], validation: [] });
    expect(splitTrainValidation(items, 0, 7).train).toEqual(items);
  });

  it('counts lengths into a histogram and the sequences the max length would cut', () => {
    const stats = lengthStats([5, 10, 10, 20, 100], 16, 4);
    expect(stats).toMatchObject({ count: 5, min: 5, max: 100, median: 10, truncated: 2 });
    expect(stats.mean).toBeCloseTo(29);
    expect(stats.histogram.reduce((n, b) => n + b.count, 0)).toBe(5);
    expect(stats.histogram[0]).toEqual({ from: 5, to: 28, count: 4 });
    expect(stats.histogram.at(-1)).toEqual({ from: 77, to: 100, count: 1 });
  });
});
