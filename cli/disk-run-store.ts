import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { originalWeightsNote } from '../core/base-precision';
import type { RunStore } from '../workers/engine/train/training-session';
import { folderRunStore, type RunFolder } from '../workers/storage/run-store';
import { exists, folderReader } from './folder';

/**
 * `hone train`'s run store: one run, in `dir` (DIR/checkpoint), laid out as the studio's runs are
 * (`workers/storage/run-store.ts`); a new run replaces the one there.
 */
export function diskRunStore(dir: string): RunStore {
  const folder: RunFolder = {
    read: folderReader(dir),
    // Through a temporary name, so a crash mid-write leaves the last whole checkpoint.
    async write(name, content) {
      const path = join(dir, name);
      const bytes = content instanceof Blob ? new Uint8Array(await content.arrayBuffer()) : content;
      await writeFile(`${path}.partial`, bytes);
      await rename(`${path}.partial`, path);
    },
    remove: (name) => rm(join(dir, name), { force: true }),
    names: async () => (await readdir(dir)).filter((name) => !name.endsWith('.partial')),
  };
  const present = () => exists(join(dir, 'run.json'));
  return folderRunStore(
    {
      ids: async () => ((await present()) ? [dir] : []),
      open: async () => ((await present()) ? folder : null),
      async create() {
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        return { id: dir, folder };
      },
      remove: (id) => rm(id, { recursive: true, force: true }),
    },
    1,
  );
}

/**
 * Says on stderr what the adapter in `adapter` folds into, where it is a `hone train` run's folder over a quantized
 * base (its checkpoint records the base); says nothing for any other adapter (a PEFT folder, a zip, a Hub repo).
 */
export async function noteOriginalWeights(adapter: string): Promise<void> {
  const checkpoint = join(adapter, 'checkpoint');
  const run = await diskRunStore(checkpoint).keptRun(checkpoint);
  const note = run && originalWeightsNote(run.request.base ?? 'f16');
  if (note) process.stderr.write(`${note}\n`);
}
