import { describe, expect, it } from 'vitest';
import { loadCorpus, splitCorpus } from './corpus';

describe('the tiny model’s corpus', () => {
  it('reads both packages’ texts once each and splits them by name, the same way every time', () => {
    const documents = loadCorpus();
    const names = documents.map((d) => d.name);
    expect(names.some((n) => n.endsWith('moby-dick/chapter_1.txt'))).toBe(true);
    expect(names.some((n) => n.includes('sotu/1790_george_washington'))).toBe(true);
    expect(names.some((n) => n.endsWith('/data.txt'))).toBe(false);
    expect(new Set(names).size).toBe(names.length);
    const total = documents.reduce((n, d) => n + d.text.length, 0);
    expect(total).toBeGreaterThan(5_000_000);

    const { train, heldOut } = splitCorpus(documents);
    expect(train.length + heldOut.length).toBe(documents.length);
    expect(heldOut.length / documents.length).toBeGreaterThan(0.02);
    expect(heldOut.length / documents.length).toBeLessThan(0.1);
    expect(splitCorpus(loadCorpus()).heldOut.map((d) => d.name)).toEqual(heldOut.map((d) => d.name));
  });
});
