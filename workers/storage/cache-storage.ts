import type { FileCache } from '../../core/hub';

/**
 * The browser's download cache: Cache Storage (in pages and workers alike), one entry per file under a
 * synthetic same-origin URL, its size in a header so listing needs no reads. Survives reloads; cleared
 * from the studio or with the site's data.
 */
const PREFIX = '/__hone_cache__/';

/** `name`: the Cache Storage cache, the hub's downloads by default (the engine also keeps matmul tuning apart). */
export function cacheStorageCache(name = 'hone-hub-v1'): FileCache {
  const open = () => caches.open(name);
  const url = (key: string) =>
    new URL(PREFIX + key.split('/').map(encodeURIComponent).join('/'), self.location.origin).href;
  const keyOf = (request: Request) =>
    new URL(request.url).pathname.slice(PREFIX.length).split('/').map(decodeURIComponent).join('/');
  return {
    async get(key) {
      const response = await (await open()).match(url(key));
      return response ? response.blob() : null;
    },
    async put(key, file) {
      await (await open()).put(url(key), new Response(file, { headers: { 'x-hone-size': String(file.size) } }));
    },
    async entries() {
      const cache = await open();
      const out: { key: string; bytes: number }[] = [];
      for (const request of await cache.keys()) {
        const response = await cache.match(request);
        out.push({ key: keyOf(request), bytes: Number(response?.headers.get('x-hone-size') ?? 0) });
      }
      return out;
    },
    async clear(prefix = '') {
      const cache = await open();
      for (const request of await cache.keys()) if (keyOf(request).startsWith(prefix)) await cache.delete(request);
    },
  };
}
