import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import type { Example } from './formats';
import { type Dataset, DatasetError, issuesCsv, loadDataset } from './load-dataset';

const file = (name: string, ...parts: BlobPart[]) => ({ name, blob: new Blob(parts) });
const jsonl = (...records: unknown[]) =>
  `${records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n')}\n`;
const load = (name: string, content: BlobPart, options = {}) => loadDataset([file(name, content)], options);
const examples = (dataset: Dataset): Example[] => dataset.examples.map((e) => e.example);
const reasons = (dataset: Dataset) => dataset.issues.map((i) => [i.line, i.reason]);

describe('dataset formats', () => {
  it('reads raw text from a plain file and from a text field', async () => {
    const plain = await load('book.txt', 'Call me Ishmael.\n\nSome years ago…');
    expect(plain.format).toBe('text');
    expect(examples(plain)).toEqual([{ kind: 'text', text: 'Call me Ishmael.\n\nSome years ago…' }]);
    const lines = await load('docs.jsonl', jsonl({ text: 'one' }, { text: 'two' }));
    expect(lines.format).toBe('text');
    expect(examples(lines)).toEqual([
      { kind: 'text', text: 'one' },
      { kind: 'text', text: 'two' },
    ]);
  });

  it('turns Alpaca records into a user turn (instruction, then input) and an answer', async () => {
    const dataset = await load(
      'alpaca.json',
      JSON.stringify([
        { instruction: 'Add', input: '2 and 3', output: '5' },
        { instruction: 'Greet', input: '', output: 'Hi' },
      ]),
    );
    expect(dataset.format).toBe('alpaca');
    expect(examples(dataset)).toEqual([
      {
        kind: 'chat',
        messages: [
          { role: 'user', content: 'Add\n\n2 and 3' },
          { role: 'assistant', content: '5' },
        ],
      },
      {
        kind: 'chat',
        messages: [
          { role: 'user', content: 'Greet' },
          { role: 'assistant', content: 'Hi' },
        ],
      },
    ]);
  });

  it('reads prompt/completion from CSV with quoted newlines and names the right lines', async () => {
    const csv = 'prompt,completion,system\nWho?,"Me,\nagain",Be kind\n\n"x",,\nonly one field\nok,fine,\n';
    const dataset = await load('pairs.csv', csv);
    expect(dataset.format).toBe('prompt_completion');
    expect(examples(dataset)).toEqual([
      {
        kind: 'chat',
        messages: [
          { role: 'system', content: 'Be kind' },
          { role: 'user', content: 'Who?' },
          { role: 'assistant', content: 'Me,\nagain' },
        ],
      },
      {
        kind: 'chat',
        messages: [
          { role: 'user', content: 'ok' },
          { role: 'assistant', content: 'fine' },
        ],
      },
    ]);
    expect(dataset.examples.map((e) => e.line)).toEqual([2, 7]);
    expect(reasons(dataset)).toEqual([
      [5, 'empty content in "completion"'],
      [6, 'malformed row: 1 fields where the header names 3'],
    ]);
  });

  it('reads TSV', async () => {
    const dataset = await load('pairs.tsv', 'question\tanswer\nWhy?\tBecause.\n');
    expect(dataset.format).toBe('prompt_completion');
    expect(dataset.mapping).toEqual({ prompt: 'question', completion: 'answer' });
    expect(dataset.examples).toHaveLength(1);
  });

  it('reads OpenAI chat: system prompt, several turns, weights, content parts', async () => {
    const dataset = await load(
      'chat.jsonl',
      jsonl({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
          { role: 'assistant', content: 'Hello.', weight: 0 },
          { role: 'user', content: 'Name?' },
          { role: 'assistant', content: 'Hone.', weight: 1 },
        ],
      }),
    );
    expect(dataset.format).toBe('messages');
    expect(examples(dataset)[0]).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello.', weight: 0 },
        { role: 'user', content: 'Name?' },
        { role: 'assistant', content: 'Hone.', weight: 1 },
      ],
    });
  });

  it('reads ShareGPT conversations', async () => {
    const dataset = await load(
      'share.json',
      JSON.stringify({
        data: [
          {
            conversations: [
              { from: 'system', value: 'S' },
              { from: 'human', value: 'Q' },
              { from: 'gpt', value: 'A' },
            ],
          },
        ],
      }),
    );
    expect(dataset.format).toBe('sharegpt');
    expect(examples(dataset)[0]).toEqual({
      kind: 'chat',
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'Q' },
        { role: 'assistant', content: 'A' },
      ],
    });
  });

  it('reads preference pairs as strings, as message lists with an implicit prompt, and in OpenAI form', async () => {
    const dataset = await load(
      'prefs.jsonl',
      jsonl(
        { prompt: 'Q1', chosen: 'good', rejected: 'bad' },
        {
          chosen: [
            { role: 'user', content: 'Q2' },
            { role: 'assistant', content: 'good' },
          ],
          rejected: [
            { role: 'user', content: 'Q2' },
            { role: 'assistant', content: 'bad' },
          ],
        },
        { prompt: 'Q3', chosen: 'same', rejected: 'same' },
      ),
    );
    expect(dataset.format).toBe('preference');
    const user = (content: string) => [{ role: 'user', content }];
    const assistant = (content: string) => [{ role: 'assistant', content }];
    expect(examples(dataset)).toEqual([
      { kind: 'preference', prompt: user('Q1'), chosen: assistant('good'), rejected: assistant('bad') },
      { kind: 'preference', prompt: user('Q2'), chosen: assistant('good'), rejected: assistant('bad') },
    ]);
    expect(reasons(dataset)).toEqual([[3, 'the chosen and rejected answers are identical']]);

    const openai = await load(
      'openai.jsonl',
      jsonl({
        input: { messages: [{ role: 'user', content: 'Q' }] },
        preferred_output: [{ role: 'assistant', content: 'yes' }],
        non_preferred_output: [{ role: 'assistant', content: 'no' }],
      }),
    );
    expect(openai.format).toBe('preference');
    expect(examples(openai)).toEqual([
      { kind: 'preference', prompt: user('Q'), chosen: assistant('yes'), rejected: assistant('no') },
    ]);
  });

  it('reads RL prompts with an optional reference answer', async () => {
    const dataset = await load('rl.jsonl', jsonl({ prompt: 'Count to 3', reference: '1 2 3' }, { prompt: 'Say hi' }));
    expect(dataset.format).toBe('rl_prompts');
    expect(examples(dataset)).toEqual([
      { kind: 'prompt', prompt: [{ role: 'user', content: 'Count to 3' }], reference: '1 2 3' },
      { kind: 'prompt', prompt: [{ role: 'user', content: 'Say hi' }] },
    ]);
  });

  it('reads Parquet, nested message lists included', async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'prompt', data: ['a', 'b', 'c'] },
        { name: 'completion', data: ['1', '', '3'] },
      ],
    });
    const dataset = await load('rows.parquet', buffer);
    expect(dataset.format).toBe('prompt_completion');
    expect(dataset.examples.map((e) => e.line)).toEqual([1, 3]);
    expect(reasons(dataset)).toEqual([[2, 'empty content in "completion"']]);
    const messages = [
      { role: 'user', content: 'Q' },
      { role: 'assistant', content: 'A' },
    ];
    const nested = await load(
      'chat.parquet',
      parquetWriteBuffer({ columnData: [{ name: 'messages', data: [messages] }] }),
    );
    expect(nested.format).toBe('messages');
    expect(examples(nested)).toEqual([{ kind: 'chat', messages }]);
  });

  it('takes a format and a field mapping from the person over what it detects', async () => {
    const records = jsonl({ q: 'What?', a: 'That.', note: 'x' });
    await expect(load('odd.jsonl', records)).rejects.toThrow(/not a dataset Hone recognises.*fields q, a, note/);
    const dataset = await load('odd.jsonl', records, {
      format: 'prompt_completion',
      mapping: { prompt: 'q', completion: 'a' },
    });
    expect(dataset.detected).toBe(false);
    expect(examples(dataset)).toEqual([
      {
        kind: 'chat',
        messages: [
          { role: 'user', content: 'What?' },
          { role: 'assistant', content: 'That.' },
        ],
      },
    ]);
    // An override of one field keeps the detected others.
    const remapped = await load('t.jsonl', jsonl({ text: 'a', body: 'b' }), { mapping: { text: 'body' } });
    expect(examples(remapped)).toEqual([{ kind: 'text', text: 'b' }]);
    await expect(load('t.jsonl', jsonl({ text: 'a' }), { mapping: { txt: 'a' } })).rejects.toThrow(
      'the text format has no field txt',
    );
  });
});

describe('bad records and bad files', () => {
  it('reports every bad record with its line and reason, and keeps the good ones', async () => {
    const dataset = await load(
      'chat.jsonl',
      jsonl(
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Yo' },
          ],
        },
        '{"messages": [',
        '[1, 2]',
        { messages: [{ role: 'wizard', content: 'x' }] },
        {
          messages: [
            { role: 'user', content: '  ' },
            { role: 'assistant', content: 'x' },
          ],
        },
        { messages: 'not a list' },
        { messages: [{ role: 'user', content: 'Hi' }] },
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'x', weight: 2 },
          ],
        },
        {
          messages: [
            { role: 'user', content: 7 },
            { role: 'assistant', content: 'x' },
          ],
        },
        { other: 1 },
      ),
    );
    expect(dataset.examples.map((e) => e.line)).toEqual([1]);
    expect(dataset.files[0]).toMatchObject({ records: 1, skipped: 9 });
    const found = reasons(dataset);
    expect(found.map(([line]) => line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(found[0][1]).toMatch(/^malformed JSON/);
    expect(found.slice(1).map(([, r]) => r)).toEqual([
      'wrong type: expected a JSON object, found an array',
      'unknown role "wizard" in "messages" message 1 (Hone trains on system, user and assistant)',
      'empty content in "messages" message 1',
      'wrong type: "messages" should be a list of messages, found a string',
      '"messages" has no assistant message to learn from',
      'wrong type: "messages" message 2 has weight 2; it must be 0 or 1',
      'wrong type: "messages" message 1 should be text, found a number',
      'missing field "messages"',
    ]);
    expect(issuesCsv(dataset.issues).split('\n')[2]).toBe(
      '"chat.jsonl",3,"wrong type: expected a JSON object, found an array"',
    );
  });

  it('gives each unreadable file a clear reason and still reads the others', async () => {
    const good = file('good.jsonl', jsonl({ text: 'fine' }));
    const latin1 = file('latin1.jsonl', '{"text": "ok"}\n{"text": "caf', new Uint8Array([0xe9]), '"}\n');
    const utf16 = file('utf16.jsonl', new Uint8Array([0xff, 0xfe, 0x7b, 0x00]));
    const empty = file('empty.jsonl');
    const png = file('picture.jsonl', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
    const fakeParquet = file('rows.parquet', 'not parquet at all');
    const odd = file('notes.docx', 'x');
    const object = file('config.json', '{"name": "x", "size": 3}');
    const dataset = await loadDataset([good, latin1, utf16, empty, png, fakeParquet, odd, object]);
    expect(examples(dataset)).toEqual([
      { kind: 'text', text: 'fine' },
      { kind: 'text', text: 'ok' },
    ]);
    const byFile = Object.fromEntries(dataset.files.map((f) => [f.name, f.error]));
    expect(byFile['good.jsonl']).toBeUndefined();
    expect(byFile['latin1.jsonl']).toBe(
      'latin1.jsonl: not UTF-8 text (an invalid byte on line 2); save it as UTF-8 and drop it again',
    );
    expect(byFile['utf16.jsonl']).toBe('utf16.jsonl: the file is UTF-16 text; save it as UTF-8 and drop it again');
    expect(byFile['empty.jsonl']).toBe('empty.jsonl: the file is empty');
    expect(byFile['picture.jsonl']).toBe('picture.jsonl: this is a binary file, not text (it holds NUL bytes)');
    expect(byFile['rows.parquet']).toBe('rows.parquet: not a Parquet file (it does not start with PAR1)');
    expect(byFile['notes.docx']).toMatch(/^notes.docx: Hone reads .jsonl, .json, .csv/);
    expect(byFile['config.json']).toMatch(/^config.json: not a dataset: expected a JSON array of records/);
    expect(dataset.issues.filter((i) => i.line === 0)).toHaveLength(7);
  });

  it('says so when no file can be read at all', async () => {
    const error = await loadDataset([file('a.jsonl'), file('b.txt', new Uint8Array([0xc3]))]).catch((e) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect(error.message).toBe(
      'a.jsonl: the file is empty\nb.txt: not UTF-8 text (the file ends inside a character on line 1)',
    );
  });

  it('says why a file gave no records: prose in a .jsonl, and where in its line JSON broke', async () => {
    const prose = await loadDataset([file('prose.jsonl', 'Call me Ishmael.\nSome years ago.\n')]).catch((e) => e);
    expect(prose).toBeInstanceOf(DatasetError);
    expect(prose.message).toMatch(
      /^prose\.jsonl: no usable records; line 1: malformed JSON: .+, and 1 more line skipped: none of its lines is JSON\. If it is plain text, name it \.txt/,
    );
    const broken = await load('broken.jsonl', `${JSON.stringify({ text: 'fine' })}\n{"text": "a", b}\n`);
    const [[line, reason]] = reasons(broken);
    expect(line).toBe(2);
    expect(reason).toMatch(/^malformed JSON: .* at column 15$/);
    expect(reason).not.toMatch(/line 1|position/);
  });

  it('streams a file past the size limit up to the limit and says what was left out', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ text: `document ${i}` }));
    const content = `${lines.join('\n')}\n`;
    const limits = { maxBytes: 4096 };
    const dataset = await load('big.jsonl', content, { limits });
    const kept = dataset.examples.length;
    expect(kept).toBeGreaterThan(100);
    expect(kept).toBeLessThan(1000);
    expect(examples(dataset)[kept - 1]).toEqual({ kind: 'text', text: `document ${kept - 1}` });
    // A line cut by the limit is neither kept nor called malformed.
    expect(dataset.issues).toEqual([]);
    expect(dataset.files[0].notice).toBe(
      'big.jsonl: only the first 0.0 MB of 0.0 MB were read; split the file to use the rest',
    );
    // Whole-file formats refuse instead of reading part of a record list.
    const json = await loadDataset([file('big.json', JSON.stringify(lines))], { limits }).catch((e) => e);
    expect(json.message).toMatch(/big.json: .* is too large to read as JSON .*save it as JSONL/);
  });
});
