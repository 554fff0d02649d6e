import { describe, expect, it } from 'vitest';
import type { ReadFile } from '../../core/checkpoint';
import { loadTokenizer } from '../../core/tokenizer';
import { bytesToUnicode, tokenizerFiles, trainBpe } from './bpe';

const reader =
  (files: Record<string, string>): ReadFile =>
  async (name) =>
    name in files ? new Blob([files[name]]) : null;

const CORPUS = [
  'the whale, the whale! the white whale swims in the sea.',
  'There she blows! The whale is white, and the sea is wide.',
  'Call me Ishmael. Some years ago, never mind how long precisely.',
];

describe('byte-level BPE training', () => {
  it('maps every byte to one printable character, reversibly', () => {
    const map = bytesToUnicode();
    expect(new Set(map).size).toBe(256);
    expect(map[' '.charCodeAt(0)]).toBe('Ġ');
    expect(map['a'.charCodeAt(0)]).toBe('a');
  });

  it('merges the most frequent pair first, deterministically, and stops when no pair repeats', () => {
    const { merges } = trainBpe(['aaab aaab aaab'], 100);
    // "aaab" ×3 and " aaab" ×2: (a, a) is the most frequent pair.
    expect(merges[0]).toEqual(['a', 'a']);
    expect(trainBpe(['aaab aaab aaab'], 100)).toEqual({ merges });
    expect(merges.length).toBeLessThan(10);
    expect(trainBpe(CORPUS, 3).merges).toHaveLength(3);
  });

  it('writes tokenizer files the Hugging Face tokenizer library runs: compressed, lossless, with ChatML', async () => {
    const { merges } = trainBpe(CORPUS, 60);
    const tokenizer = await loadTokenizer(reader(tokenizerFiles(merges)), 'trained');
    const text = CORPUS.join('\n');
    const ids = tokenizer.encode(text);
    expect(ids.length).toBeLessThan(new TextEncoder().encode(text).length * 0.6);
    expect(tokenizer.decode(ids)).toBe(text);
    expect(tokenizer.decode(tokenizer.encode('Ünïcödé and 🐋 survive'))).toBe('Ünïcödé and 🐋 survive');
    expect(tokenizer.tokenToId(merges[0].join(''))).toBe(256);
    expect(tokenizer.encode(' the whale').map((id) => tokenizer.decode([id]))).toEqual([' the', ' whale']);
    const chat = tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true });
    expect(chat).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    expect(tokenizer.eosTokenIds).toContain(tokenizer.tokenToId('<|im_end|>'));
  });
});
