/**
 * A client for the Hugging Face Hub's file layout: `{base}/{repo}/resolve/{revision}/{file}`. The base URL is a
 * setting (mirrors, and local servers in tests); a token, when given, goes in an Authorization header for gated
 * models. Downloads report progress, detect truncation (fewer bytes than Content-Length) and resume with Range
 * requests, so a dropped connection costs only what was not yet received.
 */

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

export class HubError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when the request failed before one arrived. */
    readonly status: number,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/** A repo id as the Hub spells it: `name` or `org/name`, letters, digits, `-`, `_`, `.`. */
export function checkRepoId(repo: string): string {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.includes('..')) {
    throw new HubError(`"${repo}" is not a Hub repo id (expected org/name)`, 0);
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

function statusError(status: number, repo: string, file: string, options: HubOptions): HubError {
  const where = `${repo}/${file} (revision ${options.revision ?? 'main'}) at ${options.baseUrl}`;
  if (status === 404)
    return new HubError(`${where}: not found: check the repo id, the revision and the file name`, 404);
  if (status === 401 || status === 403) {
    return new HubError(
      `${where}: access denied (HTTP ${status}): the model may be gated; accept its license on the Hub and enter an access token`,
      status,
    );
  }
  return new HubError(`${where}: the server answered HTTP ${status}`, status);
}

/** The file's size from a HEAD request, or null when the file does not exist. */
export async function headFile(options: HubOptions, repo: string, file: string): Promise<number | null> {
  const doFetch = options.fetch ?? fetch;
  const response = await doFetch(hubFileUrl(options, repo, file), { method: 'HEAD', headers: headers(options) });
  if (response.status === 404) return null;
  if (!response.ok) throw statusError(response.status, repo, file, options);
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
 * A whole file, as a Blob. Null when the file does not exist (404), so callers can probe optional files.
 * A transfer that ends early is resumed from the last byte received (Range), up to `retries` times. Received
 * bytes are gathered into parts (Blobs) as they come, so a multi-gigabyte file never has to fit in one
 * ArrayBuffer; with `resume` and `onPart` a download interrupted by a reload picks up where it stopped.
 */
export async function downloadFile(
  options: HubOptions,
  repo: string,
  file: string,
  download: DownloadOptions = {},
): Promise<Blob | null> {
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
      if (download.signal?.aborted || attemptsLeft-- <= 0) {
        throw new HubError(`${repo}/${file}: download failed: ${(error as Error).message}`, 0);
      }
      continue;
    }
    if (response.status === 404) return null;
    if (!response.ok) throw statusError(response.status, repo, file, options);
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
    if (!reader) throw new HubError(`${repo}/${file}: the response has no body`, response.status);
    let failed = false;
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
      if (download.signal?.aborted) throw new HubError(`${repo}/${file}: download cancelled`, 0);
      failed = true;
    }
    if (!failed && (total === null || received === total)) break;
    if (received > (total ?? Number.POSITIVE_INFINITY)) {
      throw new HubError(`${repo}/${file}: received ${received} bytes, more than the ${total} announced`, 0);
    }
    if (attemptsLeft-- <= 0) {
      throw new HubError(`${repo}/${file}: download ended at ${received} of ${total ?? '?'} bytes, after retries`, 0);
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

/**
 * A ReadFile over a Hub repo: cached files come from the cache, the rest are downloaded (with progress) and
 * cached. Missing files read as null, as ReadFile expects for optional files.
 */
export function hubReader(
  options: HubOptions,
  repo: string,
  cache: FileCache | null,
  download: DownloadOptions = {},
): (name: string) => Promise<Blob | null> {
  return async (name) => {
    const key = hubCacheKey(options, repo, name);
    if (!cache) return downloadFile(options, repo, name, download);
    const cached = await cache.get(key);
    if (cached) return cached;
    // Parts of an interrupted download are cached as they arrive, and resumed from.
    const partKey = (i: number) => `${key}.part-${i}`;
    const resume: Blob[] = [];
    for (let part = await cache.get(partKey(0)); part; part = await cache.get(partKey(resume.length)))
      resume.push(part);
    const clearParts = () => cache.clear(`${key}.part-`);
    const file = await downloadFile(options, repo, name, {
      ...download,
      resume,
      onPart: (part, i) => cache.put(partKey(i), part),
      onRestart: clearParts,
    });
    if (!file) return null;
    await cache.put(key, file);
    await clearParts();
    // Read back from the cache: there the file lives on disk, not in this page's memory.
    return (await cache.get(key)) ?? file;
  };
}
