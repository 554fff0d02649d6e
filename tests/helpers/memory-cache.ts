import type { FileCache } from '../../core/hub';

/** A FileCache in memory, its map exposed for tests to read or spoil. */
export function memoryCache(): FileCache & { store: Map<string, Blob> } {
  const store = new Map<string, Blob>();
  return {
    store,
    get: async (key) => store.get(key) ?? null,
    put: async (key, file) => {
      store.set(key, file);
    },
    entries: async () => [...store].map(([key, file]) => ({ key, bytes: file.size })),
    clear: async (prefix = '') => {
      for (const key of store.keys()) if (key.startsWith(prefix)) store.delete(key);
    },
  };
}
