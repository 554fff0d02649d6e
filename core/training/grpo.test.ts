import { describe, expect, it } from 'vitest';
import { groupAdvantages, grpoToken, tokenKl } from './grpo';

describe('group advantages', () => {
  it('centres and scales each group on its own, as TRL does (sample std)', () => {
    const a = groupAdvantages([1, 0, 0, 1, 5, 5, 5, 5], 4);
    // Group 1: mean 0.5, sample std sqrt(1/3).
    const std = Math.sqrt(1 / 3);
    expect(a.slice(0, 4).map((v) => v * (std + 1e-4))).toEqual(
      [0.5, -0.5, -0.5, 0.5].map((v) => expect.closeTo(v, 12)),
    );
    // A group that scored alike teaches nothing.
    expect(a.slice(4)).toEqual([0, 0, 0, 0]);
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(/3 rewards do not make groups of 2/);
  });
});

describe('the GRPO token loss', () => {
  it('has KL 0 where the policy is its reference, and positive elsewhere', () => {
    expect(tokenKl(-1.3, -1.3)).toBe(0);
    expect(tokenKl(-1, -2)).toBeGreaterThan(0);
    expect(tokenKl(-2, -1)).toBeGreaterThan(0);
  });

  it('gives d loss / d CE as a finite difference in the log-probability finds it', () => {
    for (const [advantage, logp, ref, beta] of [
      [0.8, -1.2, -0.9, 0.04],
      [-1.5, -0.3, -2.2, 0.5],
      [0.3, -2, -2, 0],
    ]) {
      const h = 1e-6;
      const loss = (lp: number) => grpoToken(advantage, lp, ref, beta).loss;
      const dLogp = (loss(logp + h) - loss(logp - h)) / (2 * h);
      // CE = -log p, so d loss / d CE = -d loss / d log p.
      expect(grpoToken(advantage, logp, ref, beta).weight).toBeCloseTo(-dLogp, 6);
    }
  });
});
