import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskCache } from '../../cli/disk-cache';
import { tempDir } from '../helpers/model-folder';

describe('the CLI’s disk cache', () => {
  it('stores files under their keys, lists them, and clears by key prefix', async () => {
    const cache = diskCache(join(await tempDir(), 'cache'));
    await cache.put('host/org/m/main/model.safetensors.part-0', new Blob(['aa']));
    await cache.put('host/org/m/main/model.safetensors.part-1', new Blob(['bbb']));
    await cache.put('host/org/m/main/config.json', new Blob(['{}']));
    expect(await (await cache.get('host/org/m/main/config.json'))?.text()).toBe('{}');
    expect(await cache.get('host/org/m/main/absent')).toBeNull();
    expect((await cache.entries()).map((e) => [e.key, e.bytes]).sort()).toEqual([
      ['host/org/m/main/config.json', 2],
      ['host/org/m/main/model.safetensors.part-0', 2],
      ['host/org/m/main/model.safetensors.part-1', 3],
    ]);
    await cache.clear('host/org/m/main/model.safetensors.part-');
    expect((await cache.entries()).map((e) => e.key)).toEqual(['host/org/m/main/config.json']);
    await expect(cache.get('../escape')).rejects.toThrow(/leaves the cache folder/);
    await cache.clear();
    expect(await cache.entries()).toEqual([]);
  });
});
