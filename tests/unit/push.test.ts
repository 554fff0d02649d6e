import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PublishError,
  type PublishOptions,
  type PublishProgress,
  publishErrorKind,
  publishToHub,
} from '../../core/hub-publish';
import { minimalModelCard } from '../../core/hub-publish-card';
import { type HubServer, startHubServer } from '../helpers/hub-server';

let hub: HubServer;

beforeAll(async () => {
  hub = await startHubServer();
  hub.users.set('hf_write', { name: 'me', orgs: ['team'], role: 'write' });
  hub.users.set('hf_read', { name: 'me', orgs: ['team'], role: 'read' });
  hub.users.set('hf_other', { name: 'other', role: 'write' });
});
afterAll(() => hub.close());

const text = (s: string) => new Blob([s]);
const bytes = (n: number) => new Uint8Array(randomBytes(n));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An adapter folder's files: two small text files, one large binary one (LFS), and their bytes. */
function adapterFiles(card = '# card\n'): { files: Map<string, Blob>; expected: Map<string, Uint8Array<ArrayBuffer>> } {
  const expected = new Map<string, Uint8Array<ArrayBuffer>>([
    ['adapter_config.json', new TextEncoder().encode('{"r": 8}\n')],
    ['adapter_model.safetensors', bytes(70_000)],
    ['README.md', new TextEncoder().encode(card)],
  ]);
  return { files: new Map([...expected].map(([name, b]) => [name, new Blob([b])])), expected };
}

const publish = (options: Partial<PublishOptions> & Pick<PublishOptions, 'repo' | 'files'>) =>
  publishToHub({ token: 'hf_write', hubUrl: hub.url, ...options });

async function readBack(repo: string, file: string, token?: string): Promise<Response> {
  return fetch(`${hub.url}/${repo}/resolve/main/${file}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
}

async function expectStored(repo: string, expected: Map<string, Uint8Array>): Promise<void> {
  for (const [name, want] of expected) {
    const response = await readBack(repo, name, 'hf_write');
    expect(response.status, name).toBe(200);
    expect(new Uint8Array(await response.arrayBuffer()), name).toEqual(want);
  }
}

const requestsTo = (pattern: RegExp) => hub.requests.filter((r) => pattern.test(r.path));
const putOids = () => requestsTo(/^\/lfs-objects\//).map((r) => r.path.split('/').at(-1) as string);

/** The publish's rejection as a PublishError (fails the test when it resolved or threw something else). */
async function refusal(promise: Promise<unknown>): Promise<PublishError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PublishError);
  return error as PublishError;
}

describe('publishing to the Hub', () => {
  it('creates a private repo, uploads the large file by LFS and commits every file, byte for byte', async () => {
    const { files, expected } = adapterFiles();
    const events: PublishProgress[] = [];
    const result = await publish({ repo: 'me/adapter', private: true, files, onProgress: (p) => events.push(p) });
    expect(result.url).toBe(`${hub.url}/me/adapter`);
    expect(result.created).toBe(true);
    expect(hub.commits.at(-1)).toMatchObject({ repo: 'me/adapter', oid: result.commit });
    expect(hub.repos.get('me/adapter')).toEqual({ private: true });
    await expectStored('me/adapter', expected);
    // Private: a stranger cannot read it.
    expect((await readBack('me/adapter', 'README.md')).status).toBe(401);
    expect((await readBack('me/adapter', 'README.md', 'hf_other')).status).toBe(404);
    // Only the safetensors went by LFS, once.
    expect(putOids()).toContain(sha256(expected.get('adapter_model.safetensors') as Uint8Array));
    expect(hub.lfs.has(`me/adapter/${sha256(expected.get('README.md') as Uint8Array)}`)).toBe(false);
    const stages = new Set(events.map((e) => e.stage));
    expect([...stages]).toEqual(['checking', 'hashing', 'uploading', 'committing']);
    expect(events.at(-1)).toMatchObject({ stage: 'committing', uploaded: 1, total: 3 });
  });

  it('publishes to an organization of the token, public unless asked', async () => {
    const result = await publish({ repo: 'team/model', files: new Map([['config.json', text('{}')]]) });
    expect(result.created).toBe(true);
    expect(hub.repos.get('team/model')).toEqual({ private: false });
    expect(await (await readBack('team/model', 'config.json')).text()).toBe('{}');
  });

  it("a name alone goes under the token's own account", async () => {
    const result = await publish({ repo: 'solo', private: true, files: new Map([['config.json', text('{}')]]) });
    expect(result.url).toBe(`${hub.url}/me/solo`);
    expect(hub.repos.get('me/solo')).toEqual({ private: true });
    expect((await refusal(publish({ repo: 'a/b/c', files: new Map([['x', text('')]]) }))).kind).toBe('bad-id');
  });

  it('publishing again commits to the same repo: no second repo, changed files updated, stored ones not resent', async () => {
    await publish({ repo: 'me/again', private: true, files: adapterFiles().files });
    const creates = requestsTo(/^\/api\/repos\/create$/).length;
    const puts = putOids().length;
    const { files, expected } = adapterFiles('# card, second version\n');
    // The same large file as the first time: only the card and the config change.
    const first = await (await readBack('me/again', 'adapter_model.safetensors', 'hf_write')).arrayBuffer();
    files.set('adapter_model.safetensors', new Blob([first]));
    expected.set('adapter_model.safetensors', new Uint8Array(first));
    const result = await publish({ repo: 'me/again', files, commitTitle: 'second' });
    expect(result.created).toBe(false);
    expect(requestsTo(/^\/api\/repos\/create$/).length).toBe(creates);
    expect(putOids().length).toBe(puts);
    expect(hub.commits.at(-1)).toMatchObject({ repo: 'me/again', title: 'second', oid: result.commit });
    await expectStored('me/again', expected);
    // It stays private: the second publish did not ask for a public repo.
    expect(hub.repos.get('me/again')).toEqual({ private: true });
  });

  it('a repo made meanwhile (409 on create) is committed to', async () => {
    hub.repos.set('me/raced', { private: true });
    hub.files.set('me/raced', new Map());
    // The repo check misses it (as a repo made after it was asked about), so the create answers 409.
    const missRepoCheck: typeof fetch = (input, init) =>
      String(input).includes('/api/models/me/raced?')
        ? Promise.resolve(new Response('{}', { status: 404 }))
        : fetch(input, init);
    const result = await publish({ repo: 'me/raced', files: new Map([['a.txt', text('a')]]), fetch: missRepoCheck });
    expect(result.created).toBe(false);
    expect(await (await readBack('me/raced', 'a.txt', 'hf_write')).text()).toBe('a');
  });

  it('a connection cut mid-upload: says how far it got; the retry sends only what the Hub does not have', async () => {
    const expected = new Map<string, Uint8Array<ArrayBuffer>>([
      ['config.json', new TextEncoder().encode('{"model_type": "llama"}')],
      ...[1, 2, 3, 4].map(
        (i) => [`model-0000${i}-of-00004.safetensors`, bytes(50_000)] as [string, Uint8Array<ArrayBuffer>],
      ),
    ]);
    const files = () => new Map([...expected].map(([name, b]) => [name, new Blob([b])]));
    hub.cutUploadOnce = true;
    const before = putOids().length;
    const creates = requestsTo(/^\/api\/repos\/create$/).length;
    const cut = await refusal(publish({ repo: 'me/cut', private: true, files: files() }));
    const stored = [...hub.lfs.keys()].filter((key) => key.startsWith('me/cut/')).map((key) => key.split('/').at(-1));
    expect(cut.kind).toBe('cut');
    expect(cut.message).toBe(
      `the upload to me/cut was cut off after ${stored.length} of 5 files: run it again to finish; ` +
        'files already uploaded are not sent twice',
    );
    // The cut upload's neighbours finished before the cut, so there is something not to send again.
    expect(stored.length).toBeGreaterThanOrEqual(1);
    expect(stored.length).toBeLessThan(4);
    expect(hub.commits.some((c) => c.repo === 'me/cut')).toBe(false);
    const firstTry = putOids().length;
    expect(firstTry - before).toBe(4);

    const result = await publish({ repo: 'me/cut', private: true, files: files() });
    expect(result.created).toBe(false);
    const resent = putOids().slice(firstTry);
    expect(resent.length).toBe(4 - stored.length);
    for (const oid of resent) expect(stored).not.toContain(oid);
    // One repo, created by the first try.
    expect(requestsTo(/^\/api\/repos\/create$/).length).toBe(creates + 1);
    expect(hub.commits.filter((c) => c.repo === 'me/cut').length).toBe(1);
    await expectStored('me/cut', expected);
  });
});

describe('publishing refused, in one line that says what to do', () => {
  const files = new Map([['README.md', text('# x\n')]]);

  it('no token, and something that is not a Hub token', async () => {
    const seen = hub.requests.length;
    const none = await refusal(publish({ repo: 'me/x', files, token: undefined }));
    expect(none.message).toBe(
      'publishing needs an access token with write permission: Hub settings in the studio, HF_TOKEN for hone',
    );
    expect((await refusal(publish({ repo: 'me/x', files, token: 'secret' }))).kind).toBe('bad-token');
    expect(hub.requests.length).toBe(seen);
    expect((await refusal(publish({ repo: 'not a repo', files }))).kind).toBe('bad-id');
    expect((await refusal(publish({ repo: 'a/../b', files }))).kind).toBe('bad-id');
  });

  it('a token the Hub rejects (401)', async () => {
    const error = await refusal(publish({ repo: 'me/x', files, token: 'hf_revoked' }));
    expect(error.message).toBe(
      `the Hub at ${hub.url} rejected the access token (HTTP 401): it is mistyped, expired or revoked; set one with ` +
        'write permission (Hub settings in the studio, HF_TOKEN for hone)',
    );
  });

  it('a read-only token: nothing is created', async () => {
    const error = await refusal(publish({ repo: 'me/read-only', files, token: 'hf_read' }));
    expect(error.kind).toBe('read-only');
    expect(error.message).toBe(
      'the access token is read-only: publishing to me/read-only needs one with write permission ' +
        '(Hub settings in the studio, HF_TOKEN for hone)',
    );
    expect(hub.repos.has('me/read-only')).toBe(false);
  });

  it("someone else's repo, or namespace (403): nothing is written", async () => {
    hub.files.set('other/theirs', new Map([['README.md', new TextEncoder().encode('theirs')]]));
    const theirs = await refusal(publish({ repo: 'other/theirs', files }));
    expect(theirs.message).toBe(
      'other/theirs belongs to someone else, or the token may not write to it (HTTP 403): publish under your own ' +
        'name or an organization the token can write to',
    );
    expect(await (await readBack('other/theirs', 'README.md')).text()).toBe('theirs');
    expect((await refusal(publish({ repo: 'other/new', files }))).kind).toBe('not-yours');
    expect(hub.repos.has('other/new')).toBe(false);
  });

  it('an unreachable Hub', async () => {
    const stopped = await startHubServer();
    await stopped.close();
    const error = await refusal(publish({ repo: 'me/x', files, hubUrl: stopped.url }));
    expect(error.message).toBe(
      `the Hub at ${stopped.url} can't be reached (offline?): try again, or check the Hub's address ` +
        '(Hub settings in the studio, HONE_HUB_URL for hone)',
    );
  });

  it('any other status names the status and what the Hub said', async () => {
    const failing: typeof fetch = (input, init) =>
      String(input).includes('/preupload/')
        ? Promise.resolve(Response.json({ error: 'storage is full' }, { status: 507 }))
        : fetch(input, init);
    const error = await refusal(publish({ repo: 'me/full', files, fetch: failing }));
    expect(error.message).toBe(
      `the Hub at ${hub.url} answered HTTP 507 publishing to me/full (storage is full): try again later`,
    );
  });

  it('every kind is known by name after crossing from a worker, where only name and message survive', async () => {
    const error = await refusal(publish({ repo: 'me/x', files, token: undefined }));
    const crossed = Object.assign(new Error(error.message), { name: error.name });
    expect(publishErrorKind(crossed)).toBe('no-token');
    expect(publishErrorKind(new Error('other'))).toBe(null);
  });
});

describe('a minimal model card', () => {
  it('says what the files are, with the Hub front matter', () => {
    const card = minimalModelCard({ kind: 'gguf', title: 'tiny', files: ['tiny.gguf'] });
    expect(card).toMatch(/^---\ntags:\n- gguf\n- hone\n---\n\n# tiny\n\nA model in GGUF format/);
    expect(card).toContain('- `tiny.gguf`');
    const adapter = minimalModelCard({ kind: 'adapter', title: 'a', files: [], baseModel: 'org/base' });
    expect(adapter).toContain('library_name: peft\nbase_model: org/base\n');
    expect(minimalModelCard({ kind: 'adapter', title: 'a', files: [], baseModel: '/home/me/m' })).not.toContain(
      'base_model',
    );
  });
});
