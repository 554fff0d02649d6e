import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../random';
import { sampleToken, samplingProblems } from './sampling';

const off = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 };

function frequencies(logits: number[], settings: typeof off, draws = 20000, previous: number[] = []) {
  const random = mulberry32(3);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, previous, settings, random)]++;
  return counts.map((c) => c / draws);
}

describe('sampling the next token', () => {
  const logits = [1, 3, 2, 0.5];

  it('is greedy at temperature 0, after the repetition penalty', () => {
    expect(sampleToken(logits, [], { ...off, temperature: 0 }, Math.random)).toBe(1);
    // Token 1's logit 3 becomes 1.5 under a penalty of 2, below token 2's.
    expect(sampleToken(logits, [1], { ...off, temperature: 0, repetitionPenalty: 2 }, Math.random)).toBe(2);
    // A negative logit is multiplied, so it also falls.
    expect(sampleToken([-1, -2], [0], { ...off, temperature: 0, repetitionPenalty: 3 }, Math.random)).toBe(1);
  });

  it('draws from the softmax of logits / temperature', () => {
    const expected = (t: number) => {
      const w = logits.map((l) => Math.exp(l / t));
      const total = w.reduce((a, b) => a + b);
      return w.map((x) => x / total);
    };
    for (const t of [1, 0.5]) {
      const got = frequencies(logits, { ...off, temperature: t });
      for (const [i, p] of expected(t).entries()) expect(got[i]).toBeCloseTo(p, 1);
    }
  });

  it('keeps only the top k, and the nucleus of mass p', () => {
    const topK = frequencies(logits, { ...off, topK: 2 });
    expect(topK[0]).toBe(0);
    expect(topK[3]).toBe(0);
    const w = [Math.exp(3), Math.exp(2)];
    expect(topK[1]).toBeCloseTo(w[0] / (w[0] + w[1]), 1);
    // Probabilities 0.61, 0.22, 0.11, 0.05: p = 0.7 keeps the first two (the second crosses 0.7).
    const nucleus = frequencies(logits, { ...off, topP: 0.7 });
    expect(nucleus[0] + nucleus[3]).toBe(0);
    expect(nucleus[1] + nucleus[2]).toBe(1);
    expect(frequencies(logits, { ...off, topP: 0.5 })[1]).toBe(1);
  });

  it('cuts a large vocabulary exactly as ranking all of it would, ties to the lower id', () => {
    // 3000 scores with many ties; ranked by a stable sort (score down, id up), the reference order.
    const random = mulberry32(11);
    const scores = Array.from({ length: 3000 }, () => Math.round(random() * 40) / 10);
    const ranked = [...scores.keys()].sort((a, b) => scores[b] - scores[a]);
    const support = (settings: typeof off) => {
      const draw = mulberry32(5);
      const seen = new Set<number>();
      for (let i = 0; i < 4000; i++) seen.add(sampleToken(scores, [], settings, draw));
      return seen;
    };
    const topK = support({ ...off, topK: 100 });
    const allowed = new Set(ranked.slice(0, 100));
    expect([...topK].every((id) => allowed.has(id))).toBe(true);
    expect(topK.size).toBeGreaterThan(80);
    // A nucleus of most of a flat vocabulary: far past the first ranked prefix of 64.
    const weights = ranked.map((id) => Math.exp(scores[id]));
    const total = weights.reduce((a, b) => a + b);
    let kept = 0;
    for (let mass = 0; mass < 0.9 * total; ) mass += weights[kept++];
    const nucleus = support({ ...off, topP: 0.9 });
    const inNucleus = new Set(ranked.slice(0, kept));
    expect([...nucleus].every((id) => inNucleus.has(id))).toBe(true);
    expect(Math.max(...[...nucleus].map((id) => ranked.indexOf(id)))).toBeGreaterThan(kept - 100);
  });

  it('is the same for the same seed', () => {
    const draw = (seed: number) => {
      const random = mulberry32(seed);
      return Array.from({ length: 20 }, () => sampleToken(logits, [], off, random));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('refuses settings that mean nothing', () => {
    expect(samplingProblems({ temperature: -1, topK: 1.5, topP: 0, repetitionPenalty: 0 })).toHaveLength(4);
    expect(samplingProblems(off)).toEqual([]);
  });
});
