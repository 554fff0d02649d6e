import { describe, expect, it } from 'vitest';
import { CHAT_TEMPLATE, tinyTokenizerFiles } from '../tests/helpers/tiny-tokenizer';
import type { ReadFile } from './checkpoint';
import { loadTokenizer } from './tokenizer';

function reader(files: Record<string, string>): ReadFile {
  return async (name) => (name in files ? new Blob([files[name]]) : null);
}

describe('the model tokenizer', () => {
  it('encodes with the merges and round-trips any text, bytes included', async () => {
    const tokenizer = await loadTokenizer(reader(tinyTokenizerFiles()), 'tiny');
    const hello = tokenizer.encode('hello the');
    expect(hello).toEqual([tokenizer.tokenToId('hello'), tokenizer.tokenToId('Ġthe')]);
    for (const text of ['hello the world', 'Ünïcödé ✓ 🦙\nnew line\ttab', '  spaces  ', '']) {
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
  });

  it('keeps special tokens whole and skips them on request', async () => {
    const tokenizer = await loadTokenizer(reader(tinyTokenizerFiles()), 'tiny');
    const ids = tokenizer.encode('<|im_start|>user\nhello<|im_end|>');
    expect(ids[0]).toBe(tokenizer.tokenToId('<|im_start|>'));
    expect(ids.at(-1)).toBe(tokenizer.tokenToId('<|im_end|>'));
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe('user\nhello');
  });

  it('renders the chat template and reads the stop tokens from the configs', async () => {
    const tokenizer = await loadTokenizer(reader(tinyTokenizerFiles()), 'tiny');
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
    ];
    expect(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(tokenizer.applyChatTemplate(messages)).not.toContain('assistant');
    const imEnd = tokenizer.tokenToId('<|im_end|>');
    const eot = tokenizer.tokenToId('<|endoftext|>');
    expect(new Set(tokenizer.eosTokenIds)).toEqual(new Set([imEnd, eot]));
  });

  it('finds the template in chat_template.jinja or a named list, and says when there is none', async () => {
    const files = tinyTokenizerFiles();
    const config = JSON.parse(files['tokenizer_config.json']);
    delete config.chat_template;
    const bare = { ...files, 'tokenizer_config.json': JSON.stringify(config) };
    const fromFile = await loadTokenizer(reader({ ...bare, 'chat_template.jinja': CHAT_TEMPLATE }), 'tiny');
    expect(fromFile.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('<|im_start|>user\nx<|im_end|>\n');
    const named = {
      ...config,
      chat_template: [
        { name: 'tool_use', template: 'T' },
        { name: 'default', template: 'D' },
      ],
    };
    const fromList = await loadTokenizer(reader({ ...bare, 'tokenizer_config.json': JSON.stringify(named) }), 'tiny');
    expect(fromList.applyChatTemplate([])).toBe('D');
    const none = await loadTokenizer(reader(bare), 'tiny');
    expect(none.hasChatTemplate).toBe(false);
    expect(none.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })).toBe(
      'User: hi\nAssistant: ',
    );
  });

  it('names the file when tokenizer files are missing or broken', async () => {
    const files = tinyTokenizerFiles();
    await expect(loadTokenizer(reader({}), 'm')).rejects.toThrow('m: no tokenizer.json');
    await expect(loadTokenizer(reader({ ...files, 'tokenizer_config.json': '{oops' }), 'm')).rejects.toThrow(
      /m\/tokenizer_config\.json/,
    );
  });
});
