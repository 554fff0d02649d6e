import type { RunStore } from '../engine/train/training-session';
import { folderRunStore, type RunFolder, type RunFolders } from './run-store';

/**
 * The browser's run store: a folder per run in the origin private file system (`hone-runs/ID`, IDs zero-padded start
 * times, the newest the current run), laid out as `run-store.ts` says. The newest KEPT_RUNS runs are kept, listed
 * for comparing their curves; they live in this browser profile only.
 */
const ROOT = 'hone-runs';
const KEPT_RUNS = 20;

type ListedDirectory = FileSystemDirectoryHandle & { keys(): AsyncIterable<string> };

async function runsRoot(): Promise<ListedDirectory> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, {
    create: true,
  }) as Promise<ListedDirectory>;
}

/** What a lookup finds, or null when the entry does not exist. */
async function unlessMissing<T>(lookup: Promise<T>): Promise<T | null> {
  try {
    return await lookup;
  } catch (error) {
    if ((error as DOMException).name === 'NotFoundError') return null;
    throw error;
  }
}

function opfsFolder(dir: FileSystemDirectoryHandle): RunFolder {
  return {
    read: (name) => unlessMissing(dir.getFileHandle(name).then((handle) => handle.getFile())),
    async write(name, content) {
      const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
      await writable.write(content instanceof Uint8Array ? new Uint8Array(content) : content);
      await writable.close();
    },
    remove: async (name) => {
      await unlessMissing(dir.removeEntry(name));
    },
    async names() {
      const names: string[] = [];
      for await (const name of (dir as ListedDirectory).keys()) names.push(name);
      return names;
    },
  };
}

const opfsRunFolders: RunFolders = {
  async ids() {
    const ids: string[] = [];
    for await (const name of (await runsRoot()).keys()) ids.push(name);
    return ids.sort();
  },
  async open(id) {
    const dir = await unlessMissing((await runsRoot()).getDirectoryHandle(id));
    return dir && opfsFolder(dir);
  },
  async create() {
    const id = String(Date.now()).padStart(15, '0');
    return { id, folder: opfsFolder(await (await runsRoot()).getDirectoryHandle(id, { create: true })) };
  },
  async remove(id) {
    await (await runsRoot()).removeEntry(id, { recursive: true });
  },
};

export function opfsRunStore(): RunStore {
  return folderRunStore(opfsRunFolders, KEPT_RUNS);
}
