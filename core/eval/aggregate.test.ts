import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../random';
import { comparePaired, mean, meanWithInterval, quantile } from './aggregate';

/** n scores of 0 or 1, each 1 with probability p, from a fixed seed. */
function binaryScores(n: number, p: number, seed: number): number[] {
  const next = mulberry32(seed);
  return Array.from({ length: n }, () => (next() < p ? 1 : 0));
}

describe('quantile', () => {
  it('interpolates linearly at q·(n − 1)', () => {
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
    expect(quantile([0, 10], 0.025)).toBeCloseTo(0.25, 12);
    expect(quantile([7], 0.975)).toBe(7);
  });
});

describe('meanWithInterval', () => {
  const scores = binaryScores(100, 0.5, 1);

  it('gives the same interval for the same seed, another for another seed', () => {
    const next = mulberry32(5);
    const continuous = Array.from({ length: 50 }, () => next());
    const first = meanWithInterval(continuous, { seed: 7 });
    expect(meanWithInterval(continuous, { seed: 7 })).toEqual(first);
    expect(meanWithInterval(continuous, { seed: 8 })).not.toEqual(first);
    expect(meanWithInterval(continuous)).toEqual(meanWithInterval(continuous, { seed: 12345, resamples: 1000 }));
  });

  it('brackets the mean, about ±1.96 standard errors for a 95% interval', () => {
    const { n, mean: m, low, high } = meanWithInterval(scores);
    expect(n).toBe(100);
    expect(m).toBe(mean(scores));
    expect(low).toBeLessThan(m);
    expect(high).toBeGreaterThan(m);
    const standardError = Math.sqrt((m * (1 - m)) / 100);
    expect(high - low).toBeGreaterThan(0.8 * 2 * 1.96 * standardError);
    expect(high - low).toBeLessThan(1.2 * 2 * 1.96 * standardError);
    // A lower coverage gives a nested, narrower interval.
    const narrow = meanWithInterval(scores, { confidence: 0.5 });
    expect(narrow.low).toBeGreaterThan(low);
    expect(narrow.high).toBeLessThan(high);
  });

  it('has zero width for a constant sample', () => {
    const constant = meanWithInterval(Array(30).fill(0.7));
    expect(constant.mean).toBeCloseTo(0.7, 12); // Σ 0.7 / 30, rounded
    expect(constant.low).toBe(constant.mean);
    expect(constant.high).toBe(constant.mean);
    expect(meanWithInterval([0.3])).toEqual({ n: 1, mean: 0.3, low: 0.3, high: 0.3 });
  });

  it('is wider for fewer samples', () => {
    const few = scores.slice(0, 20);
    const many = Array.from({ length: 10 }, () => few).flat(); // the same mean, 10× the examples
    const a = meanWithInterval(few);
    const b = meanWithInterval(many);
    expect(b.mean).toBeCloseTo(a.mean, 12);
    expect(a.high - a.low).toBeGreaterThan(2 * (b.high - b.low));
  });

  it('is NaN for no scores and refuses scores that are not finite', () => {
    const empty = meanWithInterval([]);
    expect(empty.n).toBe(0);
    expect(empty.mean).toBeNaN();
    expect(empty.low).toBeNaN();
    expect(empty.high).toBeNaN();
    expect(() => meanWithInterval([1, Number.NaN])).toThrow(/score 1/);
  });
});

describe('comparePaired', () => {
  it('counts wins, ties (within 1e-9) and losses of a against b', () => {
    const a = [1, 0, 0.5, 0.3, 1, 0.2 + 2e-9, 0.9];
    const b = [0, 0, 0.5 + 1e-12, 0.6, 1, 0.2, 0.1];
    const result = comparePaired(a, b);
    expect(result).toMatchObject({ n: 7, wins: 3, ties: 3, losses: 1 });
    expect(result.difference.mean).toBeCloseTo((1 - 0.3 + 2e-9 + 0.8) / 7, 12);
    // Where lower is better, wins and losses swap.
    expect(comparePaired(a, b, { higherIsBetter: false })).toMatchObject({ wins: 1, ties: 3, losses: 3 });
  });

  it('resamples pairs: a constant difference has a zero-width interval however spread the scores are', () => {
    const b = [0, 0.25, 0.5, 0.75, 0.25, 0, 0.5, 0.25];
    const a = b.map((score) => score + 0.25);
    const { wins, difference } = comparePaired(a, b, { seed: 3 });
    expect(wins).toBe(8);
    expect(difference).toEqual({ n: 8, mean: 0.25, low: 0.25, high: 0.25 });
    // Unpaired, each contestant's own interval is wide.
    const alone = meanWithInterval(a, { seed: 3 });
    expect(alone.high - alone.low).toBeGreaterThan(0.2);
  });

  it('puts a clear improvement above zero and no difference around it', () => {
    const base = binaryScores(200, 0.4, 11);
    const tuned = base.map((score, i) => (score === 0 && i % 3 === 0 ? 1 : score));
    const better = comparePaired(tuned, base).difference;
    expect(better.low).toBeGreaterThan(0);
    // b: a's scores moved one example along, so the mean difference is 0 but each pair differs.
    const a = binaryScores(200, 0.5, 12);
    const same = comparePaired(a, [...a.slice(1), a[0]]).difference;
    expect(same.mean).toBe(0);
    expect(same.low).toBeLessThan(0);
    expect(same.high).toBeGreaterThan(0);
  });

  it('refuses scores of different lengths', () => {
    expect(() => comparePaired([1, 2], [1])).toThrow(/length/);
  });
});
