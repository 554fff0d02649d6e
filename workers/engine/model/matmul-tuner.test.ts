import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, uploadBuffer } from '../gpu/buffers';
import type { Op } from '../gpu/ops';
import { passSeconds } from '../gpu/profile';
import { matmulCpu } from '../kernels/matmul.cpu';
import { type MatmulTile, MatmulTuner, MIN_TIMED_SECONDS, secondsPerRun } from './matmul-tuner';

const gpu = setupTestGpu();

/** A timer that, like Chrome's timestamp queries, reports whole 100 µs steps of a run that costs `each` per op. */
const quantized = (each: number) => async (run: Op[]) => Math.floor((run.length * each) / 1e-4) * 1e-4;

describe('timing a matmul candidate', () => {
  const ops = [{ kind: 'clear' } as unknown as Op];

  it('grows the run until a quantized timer tells candidates microseconds apart', async () => {
    // Ten copies of each would both read as one 100 µs step, a tie; the grown runs rank them to within 5%.
    const fast = await secondsPerRun(ops, quantized(9e-6));
    const slow = await secondsPerRun(ops, quantized(12e-6));
    expect(fast).toBeGreaterThan(9e-6 * 0.95);
    expect(fast).toBeLessThanOrEqual(9e-6);
    expect(slow).toBeGreaterThan(12e-6 * 0.95);
    expect(fast).toBeLessThan(slow);
  });

  it('stops at the first run that lasts long enough', async () => {
    const runs: number[] = [];
    const seconds = await secondsPerRun(ops, async (run) => {
      runs.push(run.length);
      return run.length * MIN_TIMED_SECONDS;
    });
    expect(runs).toEqual([8]);
    expect(seconds).toBe(MIN_TIMED_SECONDS);
  });

  it('gives up growing past a bound when the timer reads nothing', async () => {
    const runs: number[] = [];
    const nothing = async (run: Op[]) => {
      runs.push(run.length);
      return 0;
    };
    expect(await secondsPerRun(ops, nothing)).toBe(0);
    expect(Math.max(...runs)).toBe(2048);
  });
});

describe('tuning on the device', () => {
  it('picks a candidate per requested shape by timing it in one pass, and the pick computes the product', async () => {
    const { device } = gpu();
    const candidates: MatmulTile[] = [
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 },
    ];
    const tuner = new MatmulTuner(device, { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 });
    const shape = { M: 19, N: 13, K: 40 };
    tuner.productFor(false, true, shape);
    expect(await tuner.tune(candidates)).toBe(1);
    expect(await tuner.tune(candidates)).toBe(0); // tuned shapes are not timed again
    const [choice] = tuner.choices();
    expect(candidates).toContainEqual(choice.tile);

    const a = randomUniform(shape.M * shape.K, 1);
    const b = randomUniform(shape.N * shape.K, 2);
    const expected = new Float64Array(shape.M * shape.N);
    matmulCpu(Float64Array.from(a), Float64Array.from(b), expected, shape, { transA: false, transB: true });
    const c = createStorageBuffer(device, shape.M * shape.N * 4);
    const ops = tuner.productFor(false, true, shape).ops(uploadBuffer(device, a), uploadBuffer(device, b), c, shape);
    expect(maxRelativeError(await runAndRead(device, ops, c), expected)).toBeLessThan(1e-5);
    if (device.features.has('timestamp-query')) expect(await passSeconds(device, ops)).toBeGreaterThan(0);
  });

  it('runs split-K only where the partial sums fit one binding on the device', async () => {
    const { device } = gpu();
    const split: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 8 };
    const tuner = new MatmulTuner(device, { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 });
    // An LM head's shape, its 8 slices of partial sums just past the device's binding limit.
    const head = { M: 128, N: Math.ceil(device.limits.maxStorageBufferBindingSize / (8 * 128 * 4)) + 1, K: 64 };
    const small = { M: 128, N: 16, K: 64 };
    for (const shape of [head, small]) tuner.productFor(false, true, shape);
    tuner.restore(Object.fromEntries(tuner.choices().map(({ shape }) => [shape, split])), [split]);
    const [a, b, c] = [1, 2, 3].map(() => createStorageBuffer(device, 16));
    device.pushErrorScope('validation');
    // The head runs as one plain product; the small one is split (its slices, then the reduce).
    expect(tuner.productFor(false, true, head).ops(a, b, c, head)).toHaveLength(1);
    expect(tuner.productFor(false, true, small).ops(a, b, c, small)).toHaveLength(2);
    expect(await device.popErrorScope()).toBeNull();
  });

  it('tunes sets of products against running them separately, and adopts only known choices for them', async () => {
    const { device } = gpu();
    const tiled: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 };
    const split: MatmulTile = { ...tiled, splitK: 2 };
    const tuner = new MatmulTuner(device, { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }, true);
    // q/k/v-like: three widths over one input; their input gradients: a sum over three K.
    const each = [13, 5, 5].map((N) => ({ M: 9, N, K: 24 }));
    const sum = [13, 5, 5].map((K) => ({ M: 9, N: 24, K }));
    tuner.setFor('each', true, each);
    tuner.setFor('sum', false, sum);
    // Untuned on a registers fallback (CPU adapters), sets run separately.
    expect(tuner.choices().filter((c) => c.tile === 'separate')).toHaveLength(2);
    // Four distinct products (the sum's 24-wide ones: one per K), then the two sets.
    expect(await tuner.tune([tiled, split])).toBe(4 + 2);
    const sets = tuner.choices().filter((c) => /^(each|sum) /.test(c.shape));
    expect(sets.map((c) => c.shape.split(' ')[0])).toEqual(['each', 'sum']);
    // split-K is a sum's slices of each K, not an option for products into their own outputs.
    expect([tiled, 'separate']).toContainEqual(sets[0].tile);
    expect([tiled, split, 'separate']).toContainEqual(sets[1].tile);

    // The tuned sum computes Σ dyᵢ·Wᵢ.
    const dys = sum.map((s, i) => randomUniform(s.M * s.K, 10 + i));
    const ws = sum.map((s, i) => randomUniform(s.K * s.N, 20 + i));
    const expected = new Float64Array(9 * 24);
    for (const [i, s] of sum.entries())
      matmulCpu(dys[i], ws[i], expected, { ...s, beta: 1 }, { transA: false, transB: false });
    const c = createStorageBuffer(device, 9 * 24 * 4);
    const products = sum.map((s, i) => ({ a: uploadBuffer(device, dys[i]), b: uploadBuffer(device, ws[i]), shape: s }));
    const ops = tuner.setFor('sum', false, sum).sumOps(products, c, { M: 9, N: 24 });
    expect(maxRelativeError(await runAndRead(device, ops, c), expected)).toBeLessThan(1e-5);

    // A later session adopts a kept set choice that is a candidate, and nothing else.
    const later = new MatmulTuner(device, { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }, true);
    later.setFor('each', true, each);
    later.setFor('sum', false, sum);
    const [eachKey, sumKey] = sets.map((c) => c.shape);
    expect(later.restore({ [eachKey]: split, [sumKey]: split }, [tiled, split])).toBe(1);
    expect(later.choices().find((c) => c.shape === sumKey)?.tile).toEqual(split);
    expect(later.choices().find((c) => c.shape === eachKey)?.tile).toBe('separate');
  });
});
