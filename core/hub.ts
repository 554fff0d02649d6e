/**
 * A client for the Hugging Face Hub's file layout: `{base}/{repo}/resolve/{revision}/{file}`. The base URL is a
 * setting (mirrors, and local servers in tests); a token, when given, goes in an Authorization header for gated
 * models. Downloads report progress, detect truncation (fewer bytes than Content-Length) and resume with Range
 * requests, so a dropped connection costs only what was not yet received. Errors are core/hub-errors.ts's, in the
 * words the studio and `hone` share; a cached repo remembers its absent files too, so it reads again offline.
 */

import { HUB_ERROR_CODES, HubError } from './hub-errors';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubOptions {
  baseUrl: string;
  token?: string;
  revision?: string;
  /** Injected for tests and for environments without a global fetch. */
  fetch?: typeof fetch;
}

export interface DownloadProgress {
  file: string;
  receivedBytes: number;
  /** From Content-Length; null when the server does not say. */
  totalBytes: number | null;
  bytesPerSecond: number;
  /** Seconds left at the current speed; null when unknown. */
  etaSeconds: number | null;
}

export { HubError } from './hub-errors';

/** A repo id as the Hub spells it: `name` or `org/name`, letters, digits, `-`, `_`, `.`. */
export function checkRepoId(repo: string): string {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.includes('..')) {
    throw new HubError({ kind: 'bad-id', repo }, 0);
  }
  return repo;
}

export function hubFileUrl(options: HubOptions, repo: string, file: string): string {
  const base = options.baseUrl.replace(/\/+$/, '');
  const revision = encodeURIComponent(options.revision ?? 'main');
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${base}/${checkRepoId(repo)}/resolve/${revision}/${path}`;
}

function headers(options: HubOptions, extra: Record<string, string> = {}): Record<string, string> {
  return options.token ? { ...extra, Authorization: `Bearer ${options.token}` } : extra;
}

/** A file the repo does not have; `sure` when the Hub said so (EntryNotFound), not just 404. */
interface Absent {
  absent: true;
  sure: boolean;
}

/** What an answer that is not a file means: the file is absent, or an error (the Hub's X-Error-Code decides). */
function answerProblem(response: Response, repo: string, file: string, options: HubOptions): Absent | HubError {
  const { status } = response;
  const code = response.headers.get('x-error-code');
  if (code === HUB_ERROR_CODES.repo) return new HubError({ kind: 'no-repo', repo, status }, status);
  if (code === HUB_ERROR_CODES.revision) {
    return new HubError({ kind: 'no-revision', repo, revision: options.revision ?? 'main' }, status);
  }
  if (code === HUB_ERROR_CODES.gated || status === 401 || status === 403) {
    return new HubError({ kind: 'denied', repo, status }, status);
  }
  // A 404 without a code (a mirror, a plain file server) is read as a missing file, as before the Hub sent codes.
  if (status === 404) return { absent: true, sure: code === HUB_ERROR_CODES.entry };
  return new HubError({ kind: 'status', repo, file, status, baseUrl: options.baseUrl }, status);
}

function unreachable(options: HubOptions, cause: unknown): HubError {
  const error = new HubError({ kind: 'unreachable', baseUrl: options.baseUrl }, 0);
  (error as { cause?: unknown }).cause = cause;
  return error;
}

/** The file's size from a HEAD request, or null when the file does not exist. */
export async function headFile(options: HubOptions, repo: string, file: string): Promise<number | null> {
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(hubFileUrl(options, repo, file), { method: 'HEAD', headers: headers(options) });
  } catch (error) {
    throw unreachable(options, error);
  }
  if (!response.ok) {
    const problem = answerProblem(response, repo, file, options);
    if (problem instanceof HubError) throw problem;
    return null;
  }
  const size = Number(response.headers.get('x-linked-size') ?? response.headers.get('content-length'));
  return Number.isFinite(size) ? size : null;
}

export interface DownloadOptions {
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Attempts after a truncated or failed transfer before giving up. */
  retries?: number;
  /** Bytes gathered in memory before they become a part (a Blob the browser may keep on disk); 16 MiB. */
  partBytes?: number;
  /** The parts of an earlier, interrupted download of this file: the transfer resumes after them. */
  resume?: Blob[];
  /** Called with each finished part, so it can be kept and the download resumed after a reload. */
  onPart?: (part: Blob, index: number) => Promise<void>;
  /** Called when the server ignores a Range request and the download starts over: earlier parts are void. */
  onRestart?: () => Promise<void>;
}

/**
 * A whole file, as a Blob. Null when the file does not exist (404), so callers can probe optional files; a missing
 * repo or revision, a gated repo, any other status and an unreachable Hub throw a HubError. A transfer that ends early is resumed from the last byte received (Range), up to `retries` times. Received
 * bytes are gathered into parts (Blobs) as they come, so a multi-gigabyte file never has to fit in one
 * ArrayBuffer; with `resume` and `onPart` a download interrupted by a reload picks up where it stopped.
 */
export async function downloadFile(
  options: HubOptions,
  repo: string,
  file: string,
  download: DownloadOptions = {},
): Promise<Blob | null> {
  const result = await fetchFile(options, repo, file, download);
  return result instanceof Blob ? result : null;
}

async function fetchFile(
  options: HubOptions,
  repo: string,
  file: string,
  download: DownloadOptions,
): Promise<Blob | Absent> {
  const failed = (detail: string, status = 0) => new HubError({ kind: 'transfer', repo, file, detail }, status);
  const doFetch = options.fetch ?? fetch;
  const url = hubFileUrl(options, repo, file);
  const partBytes = download.partBytes ?? 16 * 2 ** 20;
  let parts: Blob[] = [...(download.resume ?? [])];
  let chunks: Uint8Array<ArrayBuffer>[] = [];
  let pending = 0;
  let received = parts.reduce((n, part) => n + part.size, 0);
  let total: number | null = null;
  const started = Date.now();
  let attemptsLeft = download.retries ?? 3;
  for (;;) {
    let response: Response;
    try {
      const range: Record<string, string> = received > 0 ? { Range: `bytes=${received}-` } : {};
      response = await doFetch(url, { headers: headers(options, range), signal: download.signal });
    } catch (error) {
      if (download.signal?.aborted) throw failed('download cancelled');
      if (attemptsLeft-- <= 0) throw unreachable(options, error);
      continue;
    }
    if (!response.ok) {
      const problem = answerProblem(response, repo, file, options);
      if (problem instanceof HubError) throw problem;
      return problem;
    }
    if (received > 0 && response.status !== 206) {
      // The server ignored the Range header: start over rather than duplicate bytes.
      parts = [];
      chunks = [];
      pending = 0;
      received = 0;
      await download.onRestart?.();
    }
    const length = Number(response.headers.get('content-length'));
    if (Number.isFinite(length) && response.headers.get('content-length') !== null) total = received + length;
    const reader = response.body?.getReader();
    if (!reader) throw failed('the response has no body', response.status);
    let cut = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value as Uint8Array<ArrayBuffer>);
        received += value.length;
        pending += value.length;
        if (pending >= partBytes) {
          const part = new Blob(chunks);
          parts.push(part);
          chunks = [];
          pending = 0;
          await download.onPart?.(part, parts.length - 1);
        }
        const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
        const bytesPerSecond = received / seconds;
        download.onProgress?.({
          file,
          receivedBytes: received,
          totalBytes: total,
          bytesPerSecond,
          etaSeconds: total === null ? null : (total - received) / Math.max(bytesPerSecond, 1),
        });
      }
    } catch {
      if (download.signal?.aborted) throw failed('download cancelled');
      cut = true;
    }
    if (!cut && (total === null || received === total)) break;
    if (received > (total ?? Number.POSITIVE_INFINITY)) {
      throw failed(`received ${received} bytes, more than the ${total} announced`);
    }
    if (attemptsLeft-- <= 0) {
      throw failed(`download ended at ${received} of ${total ?? '?'} bytes, after retries: try again to resume it`);
    }
  }
  return new Blob([...parts, ...chunks]);
}

/** Where downloaded files are kept between runs: Cache Storage or OPFS in the browser, a folder in the CLI. */
export interface FileCache {
  get(key: string): Promise<Blob | null>;
  put(key: string, file: Blob): Promise<void>;
  /** Every cached file with its size, for a person to see what the cache holds. */
  entries(): Promise<{ key: string; bytes: number }[]>;
  /** Removes every file whose key starts with `prefix` (all files without one). */
  clear(prefix?: string): Promise<void>;
}

/** The cache key of a file: host, repo, revision and path, so mirrors and revisions never mix. */
export function hubCacheKey(options: HubOptions, repo: string, file: string): string {
  const host = options.baseUrl.replace(/^[a-z]+:\/\//, '').replace(/[^\w.-]+/g, '_');
  return `${host}/${checkRepoId(repo)}/${options.revision ?? 'main'}/${file}`;
}

/** The cache key that records a file's absence (an empty entry), so a cached model never asks about it again. */
export function absenceKey(key: string): string {
  return `${key}${ABSENT_SUFFIX}`;
}

const ABSENT_SUFFIX = '.absent';

/** Whether a cache key records an absence rather than holding a file. */
export function isAbsenceKey(key: string): boolean {
  return key.endsWith(ABSENT_SUFFIX);
}

/** The files a cache holds, without the records of files a repo does not have. */
export async function cachedFiles(cache: FileCache): Promise<{ key: string; bytes: number }[]> {
  return (await cache.entries()).filter((e) => !isAbsenceKey(e.key));
}

/** Files a model may lack, which the loader probes: once the rest of the model is cached, they can be read as absent. */
const OPTIONAL_FILES = new Set([
  'model.safetensors.index.json',
  'tokenizer_config.json',
  'generation_config.json',
  'chat_template.jinja',
]);

/** The file a model cannot do without: its absence is the repo's problem, not an optional file missing. */
const REQUIRED_FILE = 'config.json';

/**
 * A ReadFile over a Hub repo: cached files come from the cache, the rest are downloaded (with progress) and
 * cached. Missing files read as null, as ReadFile expects for optional files, and their absence is cached too, so
 * a model read once reads again with the network off; a missing config.json, repo or revision throws.
 */
export function hubReader(
  options: HubOptions,
  repo: string,
  cache: FileCache | null,
  download: DownloadOptions = {},
): (name: string) => Promise<Blob | null> {
  const keyOf = (name: string) => hubCacheKey(options, repo, name);
  const absent = (name: string, result: Absent) => {
    if (name === REQUIRED_FILE) {
      const problem = { kind: 'no-file', repo, file: name, sure: result.sure, baseUrl: options.baseUrl } as const;
      throw new HubError(problem, 404);
    }
    return null;
  };
  if (!cache) {
    return async (name) => {
      const file = await fetchFile(options, repo, name, download);
      return file instanceof Blob ? file : absent(name, file);
    };
  }
  const has = async (name: string) => (await cache.get(keyOf(name))) !== null;
  const known = async (name: string) => (await has(name)) || (await cache.get(absenceKey(keyOf(name)))) !== null;
  /** config.json, tokenizer.json (or its absence) and every weight file are cached. */
  const modelCached = async (): Promise<boolean> => {
    if (!(await has(REQUIRED_FILE)) || !(await known('tokenizer.json'))) return false;
    if (await has('model.safetensors')) return true;
    const index = await cache.get(keyOf('model.safetensors.index.json'));
    if (!index) return false;
    try {
      const map = (JSON.parse(await index.text()) as { weight_map?: Record<string, string> }).weight_map ?? {};
      for (const shard of new Set(Object.values(map))) if (!(await has(shard))) return false;
      return true;
    } catch {
      return false;
    }
  };
  return async (name) => {
    const key = keyOf(name);
    const cached = await cache.get(key);
    if (cached) return cached;
    if (await cache.get(absenceKey(key))) return null;
    // Parts of an interrupted download are cached as they arrive, and resumed from.
    const partKey = (i: number) => `${key}.part-${i}`;
    const resume: Blob[] = [];
    for (let part = await cache.get(partKey(0)); part; part = await cache.get(partKey(resume.length)))
      resume.push(part);
    const clearParts = () => cache.clear(`${key}.part-`);
    let file: Blob | Absent;
    try {
      file = await fetchFile(options, repo, name, {
        ...download,
        resume,
        onPart: (part, i) => cache.put(partKey(i), part),
        onRestart: clearParts,
      });
    } catch (error) {
      // Offline, an optional file never seen reads as absent only when the whole model is cached (it was probed then).
      if (
        error instanceof HubError &&
        error.kind === 'unreachable' &&
        OPTIONAL_FILES.has(name) &&
        (await modelCached())
      )
        return null;
      throw error;
    }
    if (!(file instanceof Blob)) {
      // Remembered only where the repo is known to exist: the Hub said so, or its config.json is cached.
      if (name !== REQUIRED_FILE && (file.sure || (await has(REQUIRED_FILE))))
        await cache.put(absenceKey(key), new Blob([]));
      return absent(name, file);
    }
    await cache.put(key, file);
    await clearParts();
    // Read back from the cache: there the file lives on disk, not in this page's memory.
    return (await cache.get(key)) ?? file;
  };
}

/**
 * A file's size without downloading it: the cached copy's, else a HEAD request's (null when the repo lacks it), so
 * describing a cached model needs no network.
 */
export async function hubFileSize(
  options: HubOptions,
  repo: string,
  file: string,
  cache: FileCache | null,
): Promise<number | null> {
  const key = hubCacheKey(options, repo, file);
  const cached = await cache?.get(key);
  if (cached) return cached.size;
  if (await cache?.get(absenceKey(key))) return null;
  return headFile(options, repo, file);
}
