import { describe, expect, it } from 'vitest';
import { bradleyTerry, scoredPosition } from './reward-model';

describe('Bradley-Terry loss', () => {
  it('is log 2 for a tie and falls as the chosen answer scores higher', () => {
    expect(bradleyTerry(0.3, 0.3).loss).toBeCloseTo(Math.LN2, 12);
    expect(bradleyTerry(2, 0).loss).toBeLessThan(bradleyTerry(1, 0).loss);
    expect(bradleyTerry(1, 0).correct).toBe(true);
    expect(bradleyTerry(0, 1).correct).toBe(false);
    expect(bradleyTerry(1, 1).correct).toBe(false);
  });

  it('has the gradient of a central finite difference, and stays finite far from zero', () => {
    for (const [c, r] of [
      [0.2, -0.7],
      [-3, 4],
      [10, 9.5],
    ]) {
      const h = 1e-6;
      const numeric = (bradleyTerry(c + h, r).loss - bradleyTerry(c - h, r).loss) / (2 * h);
      expect(bradleyTerry(c, r).dChosen).toBeCloseTo(numeric, 7);
      const numericRejected = (bradleyTerry(c, r + h).loss - bradleyTerry(c, r - h).loss) / (2 * h);
      expect(-bradleyTerry(c, r).dChosen).toBeCloseTo(numericRejected, 7);
    }
    expect(bradleyTerry(-800, 800).loss).toBeCloseTo(1600, 6);
    expect(bradleyTerry(800, -800).loss).toBe(0);
  });
});

describe('scoredPosition', () => {
  it('reads the last token that is not padding, within the length the batch holds', () => {
    const pad = 0;
    expect(scoredPosition([5, 6, 7], 3, pad)).toBe(2);
    expect(scoredPosition([5, 6, 0, 0], 4, pad)).toBe(1);
    expect(scoredPosition([5, 6, 7, 8, 9], 3, pad)).toBe(2);
    expect(scoredPosition([0, 0], 2, pad)).toBe(0);
  });
});
