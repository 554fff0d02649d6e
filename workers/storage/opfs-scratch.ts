import type { ScratchFile } from '../engine/run-exports';

const FOLDER = 'hone-exports';

/**
 * Large exports (a GGUF, its zip) written piece by piece into the origin private file system, so a model's file never
 * sits in memory: the page downloads the disk-backed File. One export is kept: the ones before go when another starts.
 */
export async function opfsScratchFile(name: string): Promise<ScratchFile> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(FOLDER, { recursive: true }).catch(() => {});
  const folder = await root.getDirectoryHandle(FOLDER, { create: true });
  const handle = await folder.getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  return {
    write: (chunk) => writable.write(chunk as Uint8Array<ArrayBuffer>),
    close: async () => {
      await writable.close();
      return handle.getFile();
    },
    abort: async () => {
      await writable.abort();
      await folder.removeEntry(name);
    },
  };
}
