import type { RunFolder, RunFolders } from '../../workers/storage/run-store';

/** Run folders in memory, ids in creation order. */
export function memoryRunFolders(): RunFolders {
  const runs = new Map<string, Map<string, Blob>>();
  let next = 0;
  const folder = (files: Map<string, Blob>): RunFolder => ({
    read: async (name) => files.get(name) ?? null,
    write: async (name, content) => void files.set(name, new Blob([content as BlobPart])),
    remove: async (name) => void files.delete(name),
    names: async () => [...files.keys()],
  });
  return {
    ids: async () => [...runs.keys()],
    open: async (id) => {
      const files = runs.get(id);
      return files ? folder(files) : null;
    },
    create: async () => {
      const id = String(next++).padStart(3, '0');
      runs.set(id, new Map());
      return { id, folder: folder(runs.get(id) as Map<string, Blob>) };
    },
    remove: async (id) => void runs.delete(id),
  };
}
