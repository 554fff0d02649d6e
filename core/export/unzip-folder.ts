import { unzipSync } from 'fflate';

/**
 * A zipped folder (an exported adapter, a model) as the files in it, with the folder the zip wraps them in (if all
 * sit in one) taken off their paths, so `adapter_config.json` is found by its name. Folders and macOS's
 * `__MACOSX` shadows are left out.
 */
export function unzipFolder(zip: Uint8Array, source: string): { path: string; file: Blob }[] {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip);
  } catch (error) {
    throw new Error(`${source}: not a zip file that can be read (${(error as Error).message})`);
  }
  const names = Object.keys(entries).filter((name) => !name.endsWith('/') && !name.startsWith('__MACOSX/'));
  if (names.length === 0) throw new Error(`${source}: the zip holds no files`);
  const top = names[0].split('/')[0];
  const wrapped = names.every((name) => name.startsWith(`${top}/`));
  return names.map((name) => ({
    path: wrapped ? name.slice(top.length + 1) : name,
    file: new Blob([new Uint8Array(entries[name])]),
  }));
}

/** Files a person picked, with a single picked .zip opened into the files it holds. */
export async function expandZip(files: { path: string; file: Blob }[]): Promise<{ path: string; file: Blob }[]> {
  if (files.length !== 1 || !files[0].path.toLowerCase().endsWith('.zip')) return files;
  return unzipFolder(new Uint8Array(await files[0].file.arrayBuffer()), files[0].path);
}
