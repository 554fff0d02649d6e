import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A Hugging Face Hub stand-in on 127.0.0.1: `/{repo}/resolve/{revision}/{file}` with HEAD and Range requests,
 * an optional token requirement, and faults on demand (a transfer cut short once, a 500) so the client's
 * recovery can be tested. It counts requests per path.
 */
export interface HubServer {
  url: string;
  /** repo → file → bytes (revision `main` only). */
  files: Map<string, Map<string, Uint8Array>>;
  /** Paths (`repo/file`) whose next GET sends half its bytes and drops the connection. */
  truncateOnce: Set<string>;
  /** When set, requests without `Authorization: Bearer {token}` get 401. */
  token: string | null;
  /** When set, bodies go out in chunks of this many bytes, 50 ms apart (so progress can be seen). */
  throttleBytes: number | null;
  requests: { method: string; path: string; range: string | null }[];
  close(): Promise<void>;
}

export async function startHubServer(): Promise<HubServer> {
  const state: Omit<HubServer, 'url' | 'close'> = {
    files: new Map(),
    truncateOnce: new Set(),
    token: null,
    throttleBytes: null,
    requests: [],
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent(req.url ?? ''));
    // The studio's worker fetches cross-origin, as it would from the real Hub.
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Authorization, Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    state.requests.push({ method: req.method ?? '', path: req.url ?? '', range: req.headers.range ?? null });
    if (state.token && req.headers.authorization !== `Bearer ${state.token}`) {
      res.writeHead(401).end('unauthorized');
      return;
    }
    const [, repo, revision, file] = match ?? [];
    const bytes = revision === 'main' ? state.files.get(repo)?.get(file) : undefined;
    if (!bytes) {
      res.writeHead(404).end('Entry not found');
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
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
