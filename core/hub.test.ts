import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubServer, startHubServer } from '../tests/helpers/hub-server';
import { memoryCache } from '../tests/helpers/memory-cache';
import { randomWeights, tinyConfig } from '../workers/engine/reference/random-model';
import { loadCheckpoint } from './checkpoint';
import { type DownloadProgress, downloadFile, HubError, headFile, hubCacheKey, hubFileUrl, hubReader } from './hub';
import { expectedTensors, serializeModelConfig } from './model-config';
import { serializeSafetensors } from './safetensors';

let hub: HubServer;
const big = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251);

beforeAll(async () => {
  hub = await startHubServer();
  hub.files.set('org/blob', new Map([['data.bin', big]]));
});
afterAll(() => hub.close());

/** A download's bytes (null stays null). */
async function bytesOf(file: Promise<Blob | null>): Promise<Uint8Array | null> {
  const blob = await file;
  return blob && new Uint8Array(await blob.arrayBuffer());
}

describe('Hub client', () => {
  it('builds the Hub URL layout and refuses repo ids that would leave it', () => {
    expect(hubFileUrl({ baseUrl: 'http://h/', revision: 'v1.0' }, 'org/name', 'dir/a b.json')).toBe(
      'http://h/org/name/resolve/v1.0/dir/a%20b.json',
    );
    expect(() => hubFileUrl({ baseUrl: 'http://h' }, '../etc', 'x')).toThrow(HubError);
    expect(() => hubFileUrl({ baseUrl: 'http://h' }, 'a/b/c', 'x')).toThrow(/not a Hub repo id/);
  });

  it('downloads with progress: bytes, speed and ETA, ending at the total', async () => {
    const events: DownloadProgress[] = [];
    const bytes = await bytesOf(
      downloadFile({ baseUrl: hub.url }, 'org/blob', 'data.bin', {
        onProgress: (p) => events.push(p),
      }),
    );
    expect(bytes).toEqual(big);
    expect(events.length).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ receivedBytes: big.length, totalBytes: big.length, etaSeconds: 0 });
    for (let i = 1; i < events.length; i++)
      expect(events[i].receivedBytes).toBeGreaterThan(events[i - 1].receivedBytes);
    expect(await headFile({ baseUrl: hub.url }, 'org/blob', 'data.bin')).toBe(big.length);
  });

  it('detects a truncated transfer and resumes it with a Range request', async () => {
    hub.truncateOnce.add('org/blob/data.bin');
    const before = hub.requests.length;
    const bytes = await bytesOf(downloadFile({ baseUrl: hub.url }, 'org/blob', 'data.bin'));
    expect(bytes).toEqual(big);
    const requests = hub.requests.slice(before);
    expect(requests).toHaveLength(2);
    expect(requests[1].range).toMatch(/^bytes=\d+-$/);
    expect(Number(requests[1].range?.slice(6, -1))).toBeGreaterThan(0);
  });

  it('keeps the parts of an interrupted download and resumes from them on the next try', async () => {
    const cache = memoryCache();
    const options = { baseUrl: hub.url };
    const key = hubCacheKey(options, 'org/blob', 'data.bin');
    hub.truncateOnce.add('org/blob/data.bin');
    const partBytes = 64 * 1024;
    const interrupted = hubReader(options, 'org/blob', cache, { retries: 0, partBytes });
    await expect(interrupted('data.bin')).rejects.toThrow(/download ended at \d+ of 300000 bytes/);
    // Half the file arrived: what filled whole parts was kept (how much depends on the network's chunks).
    const parts = [...cache.store.keys()];
    expect(parts.length).toBeGreaterThan(0);
    expect(parts).toEqual(parts.map((_, i) => `${key}.part-${i}`));
    const kept = [...cache.store.values()].reduce((n, part) => n + part.size, 0);
    expect(kept).toBeGreaterThanOrEqual(partBytes);
    expect(kept).toBeLessThan(big.length);

    const before = hub.requests.length;
    const file = await hubReader(options, 'org/blob', cache, { partBytes })('data.bin');
    expect(new Uint8Array(await (file as Blob).arrayBuffer())).toEqual(big);
    expect(hub.requests.slice(before).map((r) => r.range)).toEqual([`bytes=${kept}-`]);
    expect([...cache.store.keys()]).toEqual([key]);
  });

  it('reads a missing file as null and explains a gated repo', async () => {
    expect(await downloadFile({ baseUrl: hub.url }, 'org/blob', 'nope.json')).toBeNull();
    expect(await headFile({ baseUrl: hub.url }, 'org/nothing', 'config.json')).toBeNull();
    hub.token = 'secret';
    try {
      await expect(downloadFile({ baseUrl: hub.url }, 'org/blob', 'data.bin')).rejects.toThrow(/gated.*access token/);
      expect(await bytesOf(downloadFile({ baseUrl: hub.url, token: 'secret' }, 'org/blob', 'data.bin'))).toEqual(big);
    } finally {
      hub.token = null;
    }
  });

  it('a model loads through the Hub reader, and the second load comes from the cache', async () => {
    const config = tinyConfig();
    const weights = randomWeights(config, 3);
    const shapes = expectedTensors(config);
    const tensors = new Map(
      [...weights].map(([k, v]) => [
        k,
        { dtype: 'F32' as const, shape: shapes.get(k) ?? [], data: Float32Array.from(v) },
      ]),
    );
    hub.files.set(
      'org/tiny',
      new Map([
        ['config.json', new TextEncoder().encode(serializeModelConfig(config))],
        ['model.safetensors', serializeSafetensors(tensors)],
      ]),
    );
    const cache = memoryCache();
    const options = { baseUrl: hub.url };
    const first = await loadCheckpoint(hubReader(options, 'org/tiny', cache), 'hub:org/tiny');
    expect(first.config).toEqual(config);
    const downloads = hub.requests.filter((r) => r.path.includes('org/tiny') && r.method === 'GET').length;
    expect(cache.store.has(hubCacheKey(options, 'org/tiny', 'model.safetensors'))).toBe(true);

    const second = await loadCheckpoint(hubReader(options, 'org/tiny', cache), 'hub:org/tiny');
    expect(await second.readFloat32('model.norm.weight')).toEqual(await first.readFloat32('model.norm.weight'));
    // Only the probe for the optional shard index goes out again (a missing file is not cached).
    const again = hub.requests.filter((r) => r.path.includes('org/tiny') && r.method === 'GET').length - downloads;
    expect(again).toBe(1);
    await expect(loadCheckpoint(hubReader(options, 'org/missing', cache), 'hub:org/missing')).rejects.toThrow(
      /hub:org\/missing: no config\.json/,
    );
  });
});
