import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type HubWriteState, handleWrite, owns, userOf } from './hub-server-write';

export type { HubUser } from './hub-server-write';

/**
 * A Hugging Face Hub stand-in on 127.0.0.1: `/{repo}/resolve/{revision}/{file}` with HEAD and Range requests,
 * an optional token requirement, and faults on demand (a transfer cut short once, a status such as 500) so the
 * client's recovery can be tested. It counts requests per path. Its errors read like the Hub's: a missing repo,
 * revision or file is a 404 with `X-Error-Code` RepoNotFound, RevisionNotFound or EntryNotFound, and a gated repo
 * asked without its token a 401 (no token) or 403 (another token) with `X-Error-Code: GatedRepo`.
 *
 * It is also written to as @huggingface/hub publishes (`hub-server-write.ts`): `users` maps tokens to users, a repo
 * created private reads only with its owner's token, and `cutUploadOnce` drops a large file's upload once.
 */
export interface HubServer extends HubWriteState {
  url: string;
  /** repo → file → bytes (revision `main` only). */
  files: Map<string, Map<string, Uint8Array>>;
  /** Paths (`repo/file`) whose next GET sends half its bytes and drops the connection. */
  truncateOnce: Set<string>;
  /** When set, requests without `Authorization: Bearer {token}` get 401 (403 with another token), as gated repos. */
  token: string | null;
  /** Paths (`repo/file`) answered with this HTTP status until removed. */
  failWith: Map<string, number>;
  /** When set, bodies go out in chunks of this many bytes, 50 ms apart (so progress can be seen). */
  throttleBytes: number | null;
  requests: { method: string; path: string; range: string | null }[];
  close(): Promise<void>;
}

export async function startHubServer(): Promise<HubServer> {
  const state: Omit<HubServer, 'url' | 'close'> = {
    files: new Map(),
    users: new Map(),
    repos: new Map(),
    lfs: new Map(),
    cutUploadOnce: false,
    commits: [],
    truncateOnce: new Set(),
    token: null,
    failWith: new Map(),
    throttleBytes: null,
    requests: [],
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent(req.url ?? ''));
    // The studio's worker fetches cross-origin, as it would from the real Hub (and publishes with JSON and PUTs).
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Range, Content-Type, X-Request-Id');
    res.setHeader(
      'Access-Control-Expose-Headers',
      'Content-Length, Content-Range, X-Error-Code, X-Error-Message, X-Request-Id, ETag',
    );
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    state.requests.push({ method: req.method ?? '', path: req.url ?? '', range: req.headers.range ?? null });
    const fail = (status: number, code: string | null, message: string) => {
      res.writeHead(status, code ? { 'X-Error-Code': code, 'X-Error-Message': message } : {}).end(message);
    };
    if (handleWrite(state, req, res)) return;
    if (state.token && req.headers.authorization !== `Bearer ${state.token}`) {
      const status = req.headers.authorization ? 403 : 401;
      fail(status, 'GatedRepo', 'Access to this model is restricted: you must be authenticated and granted access.');
      return;
    }
    const [, repo, revision, file] = match ?? [];
    const failure = state.failWith.get(`${repo}/${file}`);
    if (failure) {
      fail(failure, null, `HTTP ${failure}`);
      return;
    }
    const repoFiles = repo === undefined ? undefined : state.files.get(repo);
    if (repoFiles && state.repos.get(repo)?.private && !owns(userOf(state, req), repo)) {
      fail(req.headers.authorization ? 404 : 401, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (!repoFiles) {
      fail(404, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (revision !== 'main') {
      fail(404, 'RevisionNotFound', 'Invalid rev id');
      return;
    }
    const bytes = repoFiles.get(file);
    if (!bytes) {
      fail(404, 'EntryNotFound', 'Entry not found');
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const key = `${repo}/${file}`;
    if (state.truncateOnce.delete(key)) {
      res.write(body.subarray(0, Math.floor(body.length / 2)));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    const chunk = state.throttleBytes;
    if (!chunk) {
      res.end(body);
      return;
    }
    const send = (at: number) => {
      if (at >= body.length) return void res.end();
      res.write(body.subarray(at, at + chunk));
      setTimeout(() => send(at + chunk), 50);
    };
    send(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections too, so a client's next request finds nothing listening.
        server.closeAllConnections();
      }),
  });
}
