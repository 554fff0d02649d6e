import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubServer, startHubServer } from '../tests/helpers/hub-server';
import { memoryCache } from '../tests/helpers/memory-cache';
import { tinyTokenizerFiles } from '../tests/helpers/tiny-tokenizer';
import { randomWeights, tinyConfig } from '../workers/engine/reference/random-model';
import { loadCheckpoint } from './checkpoint';
import {
  absenceKey,
  type DownloadProgress,
  downloadFile,
  type HubOptions,
  headFile,
  hubCacheKey,
  hubFileSize,
  hubFileUrl,
  hubReader,
  isAbsenceKey,
} from './hub';
import { HubError, hubErrorKind, hubProblemMessage } from './hub-errors';
import { expectedTensors, type ModelConfig, serializeModelConfig } from './model-config';
import { serializeSafetensors } from './safetensors';
import { loadTokenizer } from './tokenizer';

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
    expect(await headFile({ baseUrl: hub.url }, 'org/blob', 'config.json')).toBeNull();
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
    // Nothing goes out again: the shard index's absence was cached with the files.
    const again = hub.requests.filter((r) => r.path.includes('org/tiny') && r.method === 'GET').length - downloads;
    expect(again).toBe(0);
    expect(cache.store.has(absenceKey(hubCacheKey(options, 'org/tiny', 'model.safetensors.index.json')))).toBe(true);
    await expect(loadCheckpoint(hubReader(options, 'org/missing', cache), 'hub:org/missing')).rejects.toThrow(
      'no repo org/missing on the Hub: check the id',
    );
    expect([...cache.store.keys()].some((key) => key.includes('org/missing'))).toBe(false);
  });
});

/** A closed port: nothing answers there. */
async function closedUrl(): Promise<string> {
  const server = await startHubServer();
  await server.close();
  return server.url;
}

/** What a call threw, as a HubError. */
async function thrown(call: Promise<unknown>): Promise<HubError> {
  const error = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HubError);
  return error as HubError;
}

/** A fetch answering every request with this status and headers. */
function answering(status: number, headers: Record<string, string> = {}): typeof fetch {
  return async () => new Response(null, { status, headers });
}

describe('Hub errors say what happened and what to do', () => {
  it('an unreachable Hub: try again, a mirror, or the offline demo model', async () => {
    const url = await closedUrl();
    const error = await thrown(downloadFile({ baseUrl: url }, 'org/tiny', 'config.json'));
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe(
      `the Hub at ${url} can't be reached (offline?): try again, set a mirror in Hub settings (HONE_HUB_URL for ` +
        'hone), or use the offline demo model (hone-tiny)',
    );
    expect((await thrown(headFile({ baseUrl: url }, 'org/tiny', 'model.safetensors'))).kind).toBe('unreachable');
  });

  it('a gated repo: 401 without a token, 403 with one that has no access', async () => {
    hub.token = 'secret';
    try {
      const anonymous = await thrown(downloadFile({ baseUrl: hub.url }, 'org/blob', 'data.bin'));
      expect(anonymous.message).toBe(
        'org/blob is gated or private (HTTP 401): accept the license on the Hub and set an access token in Hub ' +
          'settings (HF_TOKEN for hone)',
      );
      const wrong = await thrown(headFile({ baseUrl: hub.url, token: 'other' }, 'org/blob', 'data.bin'));
      expect([wrong.kind, wrong.status]).toEqual(['denied', 403]);
    } finally {
      hub.token = null;
    }
  });

  it('a missing repo, a missing revision and a repo without config.json, told apart by X-Error-Code', async () => {
    const cache = memoryCache();
    const noRepo = await thrown(hubReader({ baseUrl: hub.url }, 'org/nothing', cache)('config.json'));
    expect([noRepo.kind, noRepo.message]).toEqual(['no-repo', 'no repo org/nothing on the Hub: check the id']);
    expect((await thrown(headFile({ baseUrl: hub.url }, 'org/nothing', 'model.safetensors'))).kind).toBe('no-repo');
    const noRevision = await thrown(hubReader({ baseUrl: hub.url, revision: 'v9' }, 'org/blob', cache)('config.json'));
    expect(noRevision.message).toBe('no revision v9 of org/blob on the Hub: check the name after @');
    const noConfig = await thrown(hubReader({ baseUrl: hub.url }, 'org/blob', cache)('config.json'));
    expect(noConfig.message).toBe('the repo org/blob has no config.json: is it a model repo?');
    expect(noConfig.kind).toBe('no-file');
    // None of it is remembered: the id may be fixed, the repo created, the revision pushed.
    expect(cache.store.size).toBe(0);
    // Without a cache the same words.
    await expect(hubReader({ baseUrl: hub.url }, 'org/blob', null)('config.json')).rejects.toThrow(noConfig.message);
  });

  it('the Hub’s 401 for a repo it will not name to strangers, a plain 404, and other statuses', async () => {
    const options = (fetch: typeof globalThis.fetch): HubOptions => ({ baseUrl: 'http://hub.test', fetch });
    const privateOrMissing = await thrown(
      downloadFile(options(answering(401, { 'X-Error-Code': 'RepoNotFound' })), 'org/x', 'config.json'),
    );
    expect(privateOrMissing.message).toBe(
      'no repo org/x on the Hub: check the id (a private repo needs an access token: HF_TOKEN for hone)',
    );
    // A server that sends no code (a mirror): a 404 is a missing file, and config.json's absence says both.
    expect(await downloadFile(options(answering(404)), 'org/x', 'generation_config.json')).toBeNull();
    const plain = await thrown(hubReader(options(answering(404)), 'org/x', null)('config.json'));
    expect(plain.message).toBe(
      'no config.json for org/x at http://hub.test: check the id, and that it is a model repo',
    );
    hub.failWith.set('org/blob/data.bin', 503);
    try {
      const status = await thrown(downloadFile({ baseUrl: hub.url }, 'org/blob', 'data.bin'));
      expect([status.kind, status.status]).toEqual(['status', 503]);
      expect(status.message).toBe(`the Hub at ${hub.url} answered HTTP 503 for org/blob/data.bin: try again later`);
    } finally {
      hub.failWith.clear();
    }
  });

  it('every kind is known by name after crossing from a worker, where only name and message survive', () => {
    const problem = { kind: 'unreachable', baseUrl: 'http://h' } as const;
    const crossed = Object.assign(new Error(hubProblemMessage(problem)), { name: new HubError(problem, 0).name });
    expect(hubErrorKind(crossed)).toBe('unreachable');
    expect(hubErrorKind(new Error('other'))).toBeNull();
    expect(hubErrorKind('text')).toBeNull();
  });
});

/** A tiny model's files, with a tokenizer, as a Hub repo holds them; `shards` splits the weights over an index. */
function modelFiles(config: ModelConfig, seed: number, shards = 1): Map<string, Uint8Array> {
  const shapes = expectedTensors(config);
  const entries = [...randomWeights(config, seed)].map(
    ([k, v]) => [k, { dtype: 'F32' as const, shape: shapes.get(k) ?? [], data: Float32Array.from(v) }] as const,
  );
  const files = new Map<string, Uint8Array>([['config.json', new TextEncoder().encode(serializeModelConfig(config))]]);
  for (const [name, text] of Object.entries(tinyTokenizerFiles())) files.set(name, new TextEncoder().encode(text));
  if (shards === 1) {
    files.set('model.safetensors', serializeSafetensors(new Map(entries)));
    return files;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const name = `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const part = entries.filter((_, i) => i % shards === s);
    for (const [key] of part) weightMap[key] = name;
    files.set(name, serializeSafetensors(new Map(part)));
  }
  const index = { metadata: { total_size: 0 }, weight_map: weightMap };
  files.set('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify(index)));
  return files;
}

/** Reads a whole model (weights and tokenizer) as the studio and `hone` do; its norm weights, to compare. */
async function readModel(read: (name: string) => Promise<Blob | null>) {
  const checkpoint = await loadCheckpoint(read, 'hub:org/m');
  const tokenizer = await loadTokenizer(read, 'hub:org/m');
  return { norm: await checkpoint.readFloat32('model.norm.weight'), ids: tokenizer.encode('hello the') };
}

describe('a model downloaded once loads with the network off', () => {
  const offline: typeof fetch = async () => {
    throw new TypeError('fetch failed');
  };

  for (const shards of [1, 2]) {
    it(`${shards === 1 ? 'a single-file' : 'a sharded'} model, every absence remembered`, async () => {
      const repo = `org/offline-${shards}`;
      const files = modelFiles(tinyConfig({ vocabSize: 300 }), 5, shards);
      // One without generation_config.json, whose absence must be remembered too.
      if (shards === 1) files.delete('generation_config.json');
      hub.files.set(repo, files);
      const cache = memoryCache();
      const options = { baseUrl: hub.url };
      const online = await readModel(hubReader(options, repo, cache));
      const absences = [...cache.store.keys()].filter(isAbsenceKey).map((key) => key.split('/').at(-1));
      expect(absences.sort()).toEqual(
        shards === 1 ? ['generation_config.json.absent', 'model.safetensors.index.json.absent'] : [],
      );
      const before = hub.requests.length;
      expect(await readModel(hubReader({ ...options, fetch: offline }, repo, cache))).toEqual(online);
      expect(await readModel(hubReader(options, repo, cache))).toEqual(online);
      expect(hub.requests.length).toBe(before);
      // A single file's size too, for the Model step's facts (a sharded model's is its index's total).
      if (shards === 1) {
        const size = await hubFileSize({ ...options, fetch: offline }, repo, 'model.safetensors', cache);
        expect(size).toBe(hub.files.get(repo)?.get('model.safetensors')?.length);
      }
    });
  }

  it('a cache from before absences were kept: optional files read as absent only once the whole model is cached', async () => {
    const repo = 'org/old-cache';
    hub.files.set(repo, modelFiles(tinyConfig({ vocabSize: 300 }), 6));
    const cache = memoryCache();
    const options = { baseUrl: hub.url };
    const online = await readModel(hubReader(options, repo, cache));
    for (const key of [...cache.store.keys()]) if (isAbsenceKey(key)) cache.store.delete(key);
    const read = hubReader({ ...options, fetch: offline }, repo, cache);
    expect(await readModel(read)).toEqual(online);
    // Without its weights cached, the shard index's absence is not assumed: the Hub can't be reached.
    cache.store.delete(hubCacheKey(options, repo, 'model.safetensors'));
    const error = await thrown(read('model.safetensors.index.json'));
    expect(error.kind).toBe('unreachable');
    // A required file is never assumed absent.
    expect((await thrown(read('model.safetensors'))).kind).toBe('unreachable');
  });
});
