import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The Hub stand-in's write side: the endpoints @huggingface/hub calls to publish (whoami, repo info, create repo,
 * preupload, the LFS batch with the basic transfer, the PUT of each large file, the NDJSON commit). Committed files
 * land in the read side's `files`, so they read back through `/{repo}/resolve/main/{file}`. A token is a user's,
 * with a role; a user writes to repos under their own name or their orgs', with a write token. Large files are
 * kept by sha256 per repo once uploaded, committed or not, so a retried upload is told they are there already.
 */
export interface HubUser {
  name: string;
  orgs?: string[];
  role: 'read' | 'write';
}

export interface HubWriteState {
  /** repo → file → bytes: the read side's committed files. */
  files: Map<string, Map<string, Uint8Array>>;
  /** token → its user. */
  users: Map<string, HubUser>;
  /** Repos created through the API, with their visibility (a repo only in `files` is public). */
  repos: Map<string, { private: boolean }>;
  /** `repo/oid` → the bytes of a large file uploaded to that repo. */
  lfs: Map<string, Uint8Array>;
  /** When set, the next large-file upload has its connection dropped after its first bytes arrive (then unset). */
  cutUploadOnce: boolean;
  commits: { repo: string; oid: string; title: string; files: string[] }[];
}

/** What the preupload answers `lfs` for, as the Hub's default .gitattributes and its binary sniffing would. */
const LFS_NAME = /\.(safetensors|gguf|bin|pt|pth|onnx|zip|parquet)$/;

/** Large-file uploads being received, per server: a cut waits for the others to land, so what it leaves is known. */
const receiving = new WeakMap<HubWriteState, number>();

export function userOf(state: HubWriteState, req: IncomingMessage): HubUser | undefined {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  return token === undefined ? undefined : state.users.get(token);
}

/** Whether the user may see the repo (the namespace is theirs or one of their orgs). */
export function owns(user: HubUser | undefined, repo: string): boolean {
  const namespace = repo.split('/')[0];
  return user !== undefined && (user.name === namespace || (user.orgs ?? []).includes(namespace));
}

function send(res: ServerResponse, status: number, body: unknown, code?: string): void {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (code) Object.assign(headers, { 'X-Error-Code': code, 'X-Error-Message': (body as { error: string }).error });
  res.writeHead(status, headers).end(JSON.stringify(body));
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Serves the request when it is one of the write side's; false when it is not (the read side takes it). */
export function handleWrite(state: HubWriteState, req: IncomingMessage, res: ServerResponse): boolean {
  const { pathname } = new URL(req.url ?? '/', 'http://hub');
  const path = decodeURIComponent(pathname);
  const base = `http://${req.headers.host}`;
  const user = userOf(state, req);
  const exists = (repo: string) => state.files.has(repo) || state.repos.has(repo);
  /** The checks before a write, answered as the Hub would; true when the write may go ahead. */
  const mayWrite = (repo: string): boolean => {
    if (!user) send(res, 401, { error: 'Invalid credentials in Authorization header' });
    else if (!exists(repo) || (state.repos.get(repo)?.private && !owns(user, repo)))
      send(res, 404, { error: 'Repository not found' }, 'RepoNotFound');
    else if (user.role !== 'write' || !owns(user, repo))
      send(res, 403, { error: 'You do not have write access to this repo' });
    else return true;
    return false;
  };
  const route = (method: string, pattern: RegExp, serve: (m: string[]) => Promise<void> | void): boolean => {
    const m = req.method === method ? pattern.exec(path) : null;
    if (!m) return false;
    Promise.resolve(serve(m)).catch((error: Error) => send(res, 500, { error: error.message }));
    return true;
  };
  return (
    route('GET', /^\/api\/whoami-v2$/, () => {
      if (!user) return send(res, 401, { error: 'Invalid credentials in Authorization header' });
      const orgs = (user.orgs ?? []).map((name) => ({ type: 'org', name, fullname: name }));
      const accessToken = { displayName: 'test token', role: user.role, createdAt: new Date().toISOString() };
      send(res, 200, {
        type: 'user',
        id: user.name,
        name: user.name,
        orgs,
        auth: { type: 'access_token', accessToken },
      });
    }) ||
    route('GET', /^\/api\/models\/([^/]+\/[^/]+)$/, ([, repo]) => {
      const visible = exists(repo) && (!state.repos.get(repo)?.private || owns(user, repo));
      if (visible) return send(res, 200, { id: repo, private: state.repos.get(repo)?.private ?? false });
      send(res, user ? 404 : 401, { error: 'Repository not found' }, 'RepoNotFound');
    }) ||
    route('POST', /^\/api\/repos\/create$/, async () => {
      const { name, organization, visibility } = JSON.parse(String(await body(req)));
      const repo = `${organization ?? user?.name}/${name}`;
      if (!user) return send(res, 401, { error: 'Invalid credentials in Authorization header' });
      if (user.role !== 'write' || !owns(user, repo)) {
        return send(res, 403, { error: `You don't have the rights to create a model under the namespace` });
      }
      if (exists(repo)) return send(res, 409, { error: 'You already created this model repo', url: `${base}/${repo}` });
      state.repos.set(repo, { private: visibility === 'private' });
      state.files.set(repo, new Map());
      send(res, 200, { url: `${base}/${repo}`, name: repo, id: repo });
    }) ||
    route('POST', /^\/api\/models\/([^/]+\/[^/]+)\/preupload\/main$/, async ([, repo]) => {
      const { files } = JSON.parse(String(await body(req))) as {
        files: { path: string; size: number; sample: string }[];
      };
      if (!mayWrite(repo)) return;
      const binary = (sample: string) => Buffer.from(sample, 'base64').includes(0);
      const mode = (f: (typeof files)[0]) => (LFS_NAME.test(f.path) || binary(f.sample) ? 'lfs' : 'regular');
      send(res, 200, { files: files.map((f) => ({ path: f.path, uploadMode: mode(f) })) });
    }) ||
    route('POST', /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/, async ([, repo]) => {
      const { objects } = JSON.parse(String(await body(req))) as { objects: { oid: string; size: number }[] };
      if (!mayWrite(repo)) return;
      const answer = ({ oid, size }: { oid: string; size: number }) =>
        state.lfs.has(`${repo}/${oid}`)
          ? { oid, size }
          : { oid, size, actions: { upload: { href: `${base}/lfs-objects/${repo}/${oid}` } } };
      send(res, 200, { transfer: 'basic', objects: objects.map(answer) });
    }) ||
    // The basic transfer's PUT carries no token (the Hub hands out pre-signed storage URLs).
    route('PUT', /^\/lfs-objects\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/, async ([, repo, oid]) => {
      if (state.cutUploadOnce) {
        state.cutUploadOnce = false;
        // Cut after the first bytes, once the uploads running beside this one have landed (5 s at most).
        req.once('data', () => req.pause());
        const since = Date.now();
        const cut = () =>
          (receiving.get(state) ?? 0) > 0 && Date.now() - since < 5000 ? setTimeout(cut, 20) : req.socket.destroy();
        setTimeout(cut, 150);
        return;
      }
      receiving.set(state, (receiving.get(state) ?? 0) + 1);
      try {
        const bytes = await body(req);
        if (createHash('sha256').update(bytes).digest('hex') !== oid) {
          return send(res, 400, { error: 'the uploaded bytes do not match the oid' });
        }
        state.lfs.set(`${repo}/${oid}`, new Uint8Array(bytes));
        res.writeHead(200).end();
      } finally {
        receiving.set(state, (receiving.get(state) ?? 1) - 1);
      }
    }) ||
    route('POST', /^\/api\/models\/([^/]+\/[^/]+)\/commit\/main$/, async ([, repo]) => {
      const lines = String(await body(req))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { key: string; value: Record<string, string> });
      if (!mayWrite(repo)) return;
      const changes = new Map<string, Uint8Array | null>();
      for (const { key, value } of lines) {
        if (key === 'file') changes.set(value.path, new Uint8Array(Buffer.from(value.content, 'base64')));
        else if (key === 'deletedFile') changes.set(value.path, null);
        else if (key === 'lfsFile') {
          const bytes = state.lfs.get(`${repo}/${value.oid}`);
          if (!bytes) return send(res, 422, { error: `LFS object ${value.oid} for ${value.path} was never uploaded` });
          changes.set(value.path, bytes);
        }
      }
      const files = state.files.get(repo) ?? new Map<string, Uint8Array>();
      for (const [file, bytes] of changes) bytes ? files.set(file, bytes) : files.delete(file);
      state.files.set(repo, files);
      const oid = randomBytes(20).toString('hex');
      const title = String(lines.find((line) => line.key === 'header')?.value.summary ?? '');
      state.commits.push({ repo, oid, title, files: [...changes.keys()] });
      send(res, 200, { success: true, commitOid: oid, commitUrl: `${base}/${repo}/commit/${oid}`, hookOutput: '' });
    })
  );
}
