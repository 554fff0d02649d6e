import { describe, expect, it } from 'vitest';
import { dpoPair } from './dpo';

describe('the DPO loss', () => {
  it('is log 2 when the policy is the reference, and falls as the policy prefers the chosen answer', () => {
    const same = dpoPair({ policyChosen: -5, policyRejected: -7, referenceChosen: -5, referenceRejected: -7 }, 0.1);
    expect(same.loss).toBeCloseTo(Math.log(2), 12);
    expect(same.margin).toBe(0);
    const better = dpoPair({ policyChosen: -4, policyRejected: -8, referenceChosen: -5, referenceRejected: -7 }, 0.1);
    expect(better.loss).toBeLessThan(same.loss);
    expect(better.margin).toBeCloseTo(0.2, 12);
  });

  it('gives per-token weights that are the derivative of the loss (finite differences)', () => {
    const p = { policyChosen: -3.2, policyRejected: -2.9, referenceChosen: -3.5, referenceRejected: -2.5 };
    const beta = 0.5;
    const h = 1e-6;
    // log pi(chosen) = -sum CE, so d loss / d CE = -d loss / d log pi(chosen).
    const dChosen =
      (dpoPair({ ...p, policyChosen: p.policyChosen + h }, beta).loss -
        dpoPair({ ...p, policyChosen: p.policyChosen - h }, beta).loss) /
      (2 * h);
    const dRejected =
      (dpoPair({ ...p, policyRejected: p.policyRejected + h }, beta).loss -
        dpoPair({ ...p, policyRejected: p.policyRejected - h }, beta).loss) /
      (2 * h);
    const w = dpoPair(p, beta).tokenWeight;
    expect(-dChosen).toBeCloseTo(w, 8);
    expect(-dRejected).toBeCloseTo(-w, 8);
  });

  it('stays finite for huge margins', () => {
    const far = dpoPair({ policyChosen: 0, policyRejected: -1e4, referenceChosen: 0, referenceRejected: 0 }, 1);
    expect(far.loss).toBe(0);
    const wrong = dpoPair({ policyChosen: -1e4, policyRejected: 0, referenceChosen: 0, referenceRejected: 0 }, 1);
    expect(wrong.loss).toBe(1e4);
    expect(wrong.tokenWeight).toBe(1);
  });
});
