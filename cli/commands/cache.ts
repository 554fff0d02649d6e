import { join } from 'node:path';
import { cachedFiles } from '../../core/hub';
import type { Command } from '../command';
import { defaultCacheDir, diskCache } from '../disk-cache';

/** `hone cache [list|clear [PREFIX]]`: what the download cache holds, and emptying it. */
export const cache: Command = {
  usage: 'hone cache [list | clear [PREFIX]]',
  summary: 'The models downloaded from the Hub (HONE_CACHE_DIR, default ~/.cache/hone): listed, or cleared.',
  flags: {},
  positionals: true,
  async run({ positionals }) {
    const [action = 'list', prefix] = positionals;
    const root = join(defaultCacheDir(), 'hub');
    const store = diskCache(root);
    if (action === 'list') {
      const entries = await cachedFiles(store);
      for (const e of entries) process.stdout.write(`${(e.bytes / 2 ** 20).toFixed(1).padStart(9)} MB  ${e.key}\n`);
      const total = entries.reduce((n, e) => n + e.bytes, 0);
      process.stdout.write(`${entries.length} files, ${(total / 2 ** 20).toFixed(1)} MB in ${root}\n`);
      return 0;
    }
    if (action === 'clear') {
      await store.clear(prefix);
      process.stdout.write(`cleared ${prefix ? `${prefix} in ` : ''}${root}\n`);
      return 0;
    }
    throw new Error(`cache: unknown action '${action}' (list or clear)`);
  },
};
