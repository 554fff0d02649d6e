import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReadFile } from '../core/checkpoint';

/** A ReadFile over a folder on disk: a file's bytes, or null when it does not exist. */
export function folderReader(dir: string): ReadFile {
  return async (name) => {
    try {
      return new Uint8Array(await readFile(join(dir, name)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };
}

/** A JSON file's contents, with the file named in any error. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
}
