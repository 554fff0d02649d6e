import { describe, expect, it, vi } from 'vitest';
import type { AdapterSummary } from '../../../core/adapter';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { memoryCache } from '../../../tests/helpers/memory-cache';
import { CPU_KERNELS, EngineKernels } from './kernels';
import type { MatmulTile } from './matmul-tuner';
import { fileTuningStore, tuningKey } from './tuning-store';

const gpu = setupTestGpu();

// Two candidates the tuner times; neither is the untuned fallback.
const split: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 2 };
const tiled: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 };
const choices = { ...CPU_KERNELS, tune: [split, tiled] };
const key = 'matmul-tuning/test.json';
const first = { M: 8, N: 12, K: 64 };
const second = { M: 16, N: 4, K: 32 };

/** Kernels as a new session makes them over `cache`, with a spy telling how many shapes each tuning timed. */
function session(cache: ReturnType<typeof memoryCache>) {
  const kernels = new EngineKernels(gpu().device, choices, fileTuningStore(cache, key));
  const tune = vi.spyOn(kernels.matmuls, 'tune');
  const timed = async () => Promise.all(tune.mock.results.map((r) => r.value as Promise<number>));
  return { kernels, timed };
}

async function saved(cache: ReturnType<typeof memoryCache>): Promise<Record<string, MatmulTile>> {
  const file = await cache.get(key);
  return JSON.parse((await file?.text()) ?? '{}').choices;
}

describe('matmul tuning kept across sessions', () => {
  it('times each shape once per adapter: a later session adopts the winners and times only new shapes', async () => {
    const cache = memoryCache();
    const one = session(cache);
    one.kernels.matmuls.productFor(false, true, first);
    expect(await one.kernels.tuneMatmuls()).toBe(true);
    expect(await one.timed()).toEqual([1]);
    const winner = one.kernels.matmuls.tuned();
    expect(await saved(cache)).toEqual(winner);

    const two = session(cache);
    two.kernels.matmuls.productFor(false, true, first);
    // Adopted without timing, and still worth recording the plan again.
    expect(await two.kernels.tuneMatmuls()).toBe(true);
    expect(await two.timed()).toEqual([0]);
    expect(two.kernels.matmuls.choices()).toEqual(one.kernels.matmuls.choices());
    two.kernels.matmuls.productFor(true, false, second);
    expect(await two.kernels.tuneMatmuls()).toBe(true);
    expect(await two.timed()).toEqual([0, 1]);
    expect(Object.keys(await saved(cache))).toHaveLength(2);
    // Nothing new: nothing timed, nothing to record again.
    expect(await two.kernels.tuneMatmuls()).toBe(false);
  });

  it('times again over a broken file, or a kept tile that is not one of the candidates, and replaces it', async () => {
    for (const spoiled of [
      '{"version": 1, "choi',
      JSON.stringify({ version: 1, choices: { 'nt 8x12x64x1': { ...tiled, tileM: 64 } } }),
    ]) {
      const cache = memoryCache();
      await cache.put(key, new Blob([spoiled]));
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      const s = session(cache);
      s.kernels.matmuls.productFor(false, true, first);
      expect(await s.kernels.tuneMatmuls()).toBe(true);
      expect(await s.timed()).toEqual([1]);
      expect(Object.values(await saved(cache))).toEqual([expect.toBeOneOf([split, tiled])]);
      warn.mockRestore();
    }
  });

  it('keeps each adapter and candidate list in its own file', () => {
    const adapter = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'H100' } as AdapterSummary;
    const base = tuningKey(adapter, [split, tiled]);
    expect(base).toMatch(/^matmul-tuning\/nvidia-hopper-[0-9a-f]+\.json$/);
    expect(tuningKey({ ...adapter }, [split, tiled])).toBe(base);
    expect(tuningKey({ ...adapter, description: 'H100 driver 2' }, [split, tiled])).not.toBe(base);
    expect(tuningKey(adapter, [tiled])).not.toBe(base);
  });
});
