import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { uploadBuffer } from '../gpu/buffers';
import { DropoutKernel } from './dropout';
import { dropoutMaskCpu } from './dropout.cpu';

const gpu = setupTestGpu();

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

  it('kernel draws the CPU twin’s mask', async () => {
    const { device } = gpu();
    const k = new DropoutKernel(device);
    const n = 1037;
    const x = randomUniform(n, 1);
    const seed = uploadBuffer(device, Uint32Array.of(0xdeadbeef, 1));
    const mask = dropoutMaskCpu(n, 0xdeadbeef, 7, 0.25);
    // A value the mask drops comes out as 0 even when it is not finite.
    const dropped = mask.indexOf(0);
    x[dropped] = Number.POSITIVE_INFINITY;
    const y = uploadBuffer(device, randomUniform(n, 2));
    const written = await runAndRead(device, [k.op(uploadBuffer(device, x), seed, y, n, 7, 0.25)], y);
    expect(written[dropped]).toBe(0);
    x[dropped] = 0;
    expect(
      maxRelativeError(
        written,
        Float64Array.from(x, (v, i) => v * mask[i]),
      ),
    ).toBeLessThan(1e-7);
    // Switched off (evaluation): every value passes, unscaled.
    const off = uploadBuffer(device, Uint32Array.of(0xdeadbeef, 0));
    expect(await runAndRead(device, [k.op(uploadBuffer(device, x), off, y, n, 7, 0.25)], y)).toEqual(x);
  });
});
