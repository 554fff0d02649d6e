import { openAsBlob } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_PRECISIONS, type BasePrecision, QUANTIZED_FROM_PARAMETERS } from '../core/base-precision';
import type { ReadFile } from '../core/checkpoint';
import { pickedFilesReader } from '../core/export/unzip-folder';
import { DEFAULT_HUB_URL, type DownloadProgress, hubReader } from '../core/hub';
import { defaultCacheDir, diskCache } from './disk-cache';
import { folderReader } from './folder';

/** The --base flag of the commands that load a model. */
export const BASE_FLAG = {
  base: {
    value: 'P',
    help: `the frozen base's precision: ${BASE_PRECISIONS.join(', ')} (default: f16 below ${QUANTIZED_FROM_PARAMETERS / 1e9}B parameters, else q4, q8 where rows are not whole groups of 32; smaller where a matrix would not fit the GPU's binding limit)`,
  },
} as const;

/** --base, checked; undefined for the model's default. */
export function basePrecisionFlag(values: Record<string, unknown>): BasePrecision | undefined {
  const base = values.base;
  if (base === undefined) return undefined;
  if (!BASE_PRECISIONS.includes(base as BasePrecision)) {
    throw new Error(`--base must be one of ${BASE_PRECISIONS.join(', ')}, not '${String(base)}'`);
  }
  return base as BasePrecision;
}

/** The Hub settings from the environment: HONE_HUB_URL (a mirror, or a local server) and HF_TOKEN. */
export function hubOptionsFromEnv(revision?: string) {
  return {
    baseUrl: process.env.HONE_HUB_URL ?? DEFAULT_HUB_URL,
    token: process.env.HF_TOKEN ?? process.env.HONE_HUB_TOKEN,
    revision,
  };
}

/** Whether a progress line is open on stderr (no newline yet), so an error starts on a line of its own. */
let progressOpen = false;

function progressLine(p: DownloadProgress): void {
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  const total = p.totalBytes === null ? '' : ` / ${mb(p.totalBytes)} MB`;
  const eta = p.etaSeconds === null ? '' : `, ${Math.ceil(p.etaSeconds)} s left`;
  process.stderr.write(`\r${p.file}: ${mb(p.receivedBytes)}${total} MB at ${mb(p.bytesPerSecond)} MB/s${eta}   `);
  progressOpen = !(p.totalBytes !== null && p.receivedBytes === p.totalBytes);
  if (!progressOpen) process.stderr.write('\n');
}

/**
 * A Hub repo's ReadFile: from the cache folder when the files are there (a model read once reads again offline),
 * else downloaded with progress. Its errors (unreachable, gated, no such repo, revision or config.json) are core's
 * HubError messages, the studio's words.
 */
function hubSource(repo: string, revision: string | undefined): ReadFile {
  const cache = diskCache(join(defaultCacheDir(), 'hub'));
  const read = hubReader(hubOptionsFromEnv(revision), repo, cache, { onProgress: progressLine });
  return async (name) => {
    try {
      return await read(name);
    } catch (error) {
      if (progressOpen) process.stderr.write('\n');
      progressOpen = false;
      throw error;
    }
  };
}

/** Hone's own tiny model, shipped in the package (the studio serves the same folder). */
export const BUNDLED_MODEL = 'hone-tiny';

/**
 * Where a `--model` or `--adapter` argument points: `hone-tiny` (the bundled model), `hub:ORG/NAME[@REVISION]`
 * (downloaded once into the cache folder, with progress on stderr), a local folder, or a zip of one (as the
 * studio exports adapters). All give the same ReadFile to the one loader.
 */
export function modelSource(spec: string): { read: ReadFile; label: string } {
  if (spec === BUNDLED_MODEL) {
    return { read: folderReader(fileURLToPath(new URL('../public/models/hone-tiny', import.meta.url))), label: spec };
  }
  if (spec.toLowerCase().endsWith('.zip')) return { read: zipReader(spec), label: spec };
  if (!spec.startsWith('hub:')) return { read: folderReader(spec), label: spec };
  const [repo, revision] = spec.slice(4).split('@');
  return { read: hubSource(repo, revision), label: spec };
}

/**
 * A ReadFile over a zipped folder on disk, opened on the first read: its directory read from the file's tail, each
 * file read (inflated, checked) only when asked for, the zip itself never read whole into memory.
 */
function zipReader(path: string): ReadFile {
  let files: Promise<ReadFile> | null = null;
  return async (name) => {
    files ??= stat(path)
      .then((info) => {
        if (!info.isFile()) throw new Error('not a file');
        return openAsBlob(path);
      })
      .then(
        (zip) => pickedFilesReader([{ path, file: zip }]),
        (error: NodeJS.ErrnoException) => {
          throw new Error(`${path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
        },
      );
    return (await files)(name);
  };
}
