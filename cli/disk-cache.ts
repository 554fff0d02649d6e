import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { FileCache } from '../core/hub';

/** The CLI's cache folder: HONE_CACHE_DIR, else ~/.cache/hone. */
export function defaultCacheDir(): string {
  return process.env.HONE_CACHE_DIR ?? join(homedir(), '.cache', 'hone');
}

/** A FileCache in a folder: one file per key, written whole through a temporary name so a crash leaves no half file. */
export function diskCache(root: string): FileCache {
  const pathOf = (key: string) => {
    const path = resolve(root, key);
    if (!path.startsWith(resolve(root) + sep)) throw new Error(`cache key ${key} leaves the cache folder`);
    return path;
  };
  return {
    async get(key) {
      try {
        await stat(pathOf(key));
        return await openAsBlob(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },
    async put(key, file) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      await pipeline(Readable.fromWeb(file.stream() as NodeReadableStream), createWriteStream(`${path}.partial`));
      await rename(`${path}.partial`, path);
    },
    async entries() {
      const out: { key: string; bytes: number }[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) await walk(path);
          else if (!entry.name.endsWith('.partial'))
            out.push({ key: relative(root, path), bytes: (await stat(path)).size });
        }
      };
      await walk(root);
      return out;
    },
    async clear(prefix = '') {
      if (!prefix) {
        await rm(root, { recursive: true, force: true });
        return;
      }
      for (const { key } of await this.entries()) if (key.startsWith(prefix)) await rm(pathOf(key), { force: true });
    },
  };
}
