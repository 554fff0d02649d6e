import { describe, expect, it } from 'vitest';
import { evalExamples, perplexityTarget } from './examples';

describe('evaluation examples', () => {
  it('asks the conversation up to its last answer, and scores against that answer', () => {
    const { examples, skipped } = evalExamples([
      {
        file: 'chat.jsonl',
        line: 3,
        example: {
          kind: 'chat',
          messages: [
            { role: 'system', content: 'Be brief.' },
            { role: 'user', content: 'Capital of Peru?' },
            { role: 'assistant', content: 'Lima.' },
            { role: 'user', content: 'And of Chile?' },
            { role: 'assistant', content: 'Santiago.' },
          ],
        },
      },
      {
        file: 'rl.jsonl',
        line: 1,
        example: { kind: 'prompt', prompt: [{ role: 'user', content: 'Hi' }], reference: 'Aye' },
      },
      { file: 'rl.jsonl', line: 2, example: { kind: 'prompt', prompt: [{ role: 'user', content: 'Yo' }] } },
      { file: 'book.txt', line: 1, example: { kind: 'text', text: 'Call me Ishmael.' } },
      {
        file: 'prefs.jsonl',
        line: 7,
        example: {
          kind: 'preference',
          prompt: [{ role: 'user', content: 'Best colour?' }],
          chosen: [{ role: 'assistant', content: 'Blue.' }],
          rejected: [{ role: 'assistant', content: 'Mauve.' }],
        },
      },
      { file: 'chat.jsonl', line: 4, example: { kind: 'chat', messages: [{ role: 'user', content: 'No answer' }] } },
    ]);
    expect(examples).toEqual([
      {
        id: 'chat.jsonl:3',
        prompt: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Capital of Peru?' },
          { role: 'assistant', content: 'Lima.' },
          { role: 'user', content: 'And of Chile?' },
        ],
        reference: 'Santiago.',
      },
      { id: 'rl.jsonl:1', prompt: [{ role: 'user', content: 'Hi' }], reference: 'Aye' },
      { id: 'rl.jsonl:2', prompt: [{ role: 'user', content: 'Yo' }], reference: null },
      { id: 'book.txt:1', prompt: [], reference: null, text: 'Call me Ishmael.' },
      { id: 'prefs.jsonl:7', prompt: [{ role: 'user', content: 'Best colour?' }], reference: 'Blue.' },
    ]);
    expect(skipped).toBe(1);
    // Perplexity reads the reference after its prompt, raw text as it is, and nothing where neither is.
    expect(examples.map(perplexityTarget)).toEqual([
      { kind: 'chat', messages: [...examples[0].prompt, { role: 'assistant', content: 'Santiago.' }] },
      { kind: 'chat', messages: [...examples[1].prompt, { role: 'assistant', content: 'Aye' }] },
      null,
      { kind: 'text', text: 'Call me Ishmael.' },
      { kind: 'chat', messages: [...examples[4].prompt, { role: 'assistant', content: 'Blue.' }] },
    ]);
  });
});
