import { describe, expect, it } from 'vitest';
import { dropoutMaskCpu } from './dropout.cpu';

describe('LoRA dropout', () => {
  it('CPU twin: keeps about 1 - p of the values, differently per module and per seed', () => {
    const a = dropoutMaskCpu(20000, 5, 0, 0.3);
    const kept = a.filter((m) => m > 0).length / a.length;
    expect(kept).toBeGreaterThan(0.68);
    expect(kept).toBeLessThan(0.72);
    expect(a.every((m) => m === 0 || Math.abs(m - 1 / 0.7) < 1e-12)).toBe(true);
    expect(dropoutMaskCpu(100, 5, 1, 0.3)).not.toEqual(a.subarray(0, 100));
    expect(dropoutMaskCpu(100, 6, 0, 0.3)).not.toEqual(a.subarray(0, 100));
    expect(dropoutMaskCpu(100, 5, 0, 0).every((m) => m === 1)).toBe(true);
  });
});
