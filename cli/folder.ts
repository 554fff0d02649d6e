import { openAsBlob } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ReadFile } from '../core/checkpoint';
import type { DatasetFile } from '../core/dataset/read-records';

/** A ReadFile over a folder on disk: a file-backed Blob, or null when the file does not exist. */
export function folderReader(dir: string): ReadFile {
  return async (name) => {
    const path = join(dir, name);
    try {
      // openAsBlob's own error does not say the file is missing, so ask first.
      await stat(path);
      return await openAsBlob(path);
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

/** Dataset files named on the command line, file-backed (read as streams), each refused by name when missing. */
export async function datasetFiles(paths: string[]): Promise<DatasetFile[]> {
  const files: DatasetFile[] = [];
  for (const path of paths) {
    try {
      await stat(path);
    } catch {
      throw new Error(`${path}: no such file`);
    }
    files.push({ name: basename(path), blob: await openAsBlob(path) });
  }
  return files;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
