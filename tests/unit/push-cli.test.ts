import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { hone, honeWithEnv } from '../helpers/hone-cli';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { tempDir, writeModelFolder } from '../helpers/model-folder';

let hub: HubServer;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  hub = await startHubServer();
  hub.users.set('hf_write', { name: 'me', role: 'write' });
  hub.users.set('hf_read', { name: 'me', role: 'read' });
  dir = await tempDir('hone-push-cli-');
  env = { HONE_HUB_URL: hub.url, HF_TOKEN: 'hf_write', HONE_HUB_TOKEN: '' };
});
afterAll(() => hub.close());

const push = (extraEnv: Record<string, string>, ...args: string[]) =>
  honeWithEnv({ ...env, ...extraEnv }, 'push', ...args);

/** An adapter folder as `hone train` writes one (any bytes for the weights: push does not read them). */
async function writeAdapter(folder: string): Promise<string> {
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'adapter_config.json'), '{"r": 8, "base_model_name_or_path": "org/base"}\n');
  await writeFile(join(folder, 'adapter_model.safetensors'), randomBytes(40_000));
  return folder;
}

/** Every file under the folder, by its path relative to it. */
async function folderFiles(folder: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(folder, path), new Uint8Array(await readFile(path)));
  }
  return files;
}

/** The repo's files as the Hub serves them back (with the owner's token: the repos are private). */
async function expectOnHub(repo: string, expected: Map<string, Uint8Array>): Promise<void> {
  for (const [name, bytes] of expected) {
    const response = await fetch(`${hub.url}/${repo}/resolve/main/${name}`, {
      headers: { Authorization: 'Bearer hf_write' },
    });
    expect(response.status, `${repo}/${name}`).toBe(200);
    expect(new Uint8Array(await response.arrayBuffer()), `${repo}/${name}`).toEqual(bytes);
  }
  expect([...(hub.files.get(repo)?.keys() ?? [])].sort()).toEqual([...expected.keys()].sort());
}

const creates = () => hub.requests.filter((r) => r.path === '/api/repos/create').length;
const putOids = () =>
  hub.requests.filter((r) => r.path.startsWith('/lfs-objects/')).map((r) => r.path.split('/').at(-1));

describe('hone push', () => {
  it('--help lists the flags; PATH and --repo are required', async () => {
    const help = await hone('push', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: hone push PATH --repo ORG/NAME [--private] [--message TEXT]');
    expect(help.stdout).toMatch(/--private\s+create the repo private/);
    const bare = await push({}, join(dir, 'nothing'));
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain('hone: usage: hone push PATH --repo ORG/NAME');
    const missing = await push({}, join(dir, 'nothing'), '--repo', 'me/x');
    expect(missing.stderr).toContain(`hone: ${join(dir, 'nothing')}: no such file or folder`);
  });

  it('an adapter folder to a new private repo, each file read back byte-identical, the URL printed', async () => {
    const adapter = await writeAdapter(join(dir, 'adapter'));
    await writeFile(join(adapter, 'README.md'), '# my adapter\n');
    const result = await push({}, adapter, '--repo', 'me/adapter', '--private', '--message', 'first adapter');
    expect(result.stderr).toContain('pushing the adapter in');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${hub.url}/me/adapter\n`);
    expect(result.stderr).toMatch(/pushed 3 files to me\/adapter \(a new private repo, commit [0-9a-f]{7}\)/);
    expect(hub.repos.get('me/adapter')).toEqual({ private: true });
    expect(hub.commits.at(-1)).toMatchObject({ repo: 'me/adapter', title: 'first adapter' });
    await expectOnHub('me/adapter', await folderFiles(adapter));
  });

  it('a model folder; pushed again to the same repo it updates it (no second repo, stored weights not resent)', async () => {
    const config = tinyConfig({ vocabSize: 64 });
    const model = await writeModelFolder(join(dir, 'model'), config, randomWeights(config, 3));
    await writeFile(join(model, 'tokenizer.json'), '{"version": "1.0"}');
    const first = await push({}, model, '--repo', 'me/model', '--private');
    expect(first.code).toBe(0);
    const expected = await folderFiles(model);
    const card = hub.files.get('me/model')?.get('README.md');
    expect(new TextDecoder().decode(card)).toContain('A model in the Hugging Face layout');
    expected.set('README.md', card as Uint8Array);
    await expectOnHub('me/model', expected);

    const [made, puts] = [creates(), putOids().length];
    await writeFile(join(model, 'tokenizer.json'), '{"version": "2.0"}');
    await writeFile(join(model, 'README.md'), '# second\n');
    const again = await push({}, model, '--repo', 'me/model');
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/pushed 4 files to me\/model \(updated, commit/);
    expect(creates()).toBe(made);
    expect(putOids().length).toBe(puts);
    await expectOnHub('me/model', await folderFiles(model));
  });

  it('a .gguf file, with a minimal model card saying what it is', async () => {
    const gguf = join(dir, 'tiny.gguf');
    await writeFile(gguf, randomBytes(30_000));
    const result = await push({}, gguf, '--repo', 'me/tiny-gguf', '--private');
    expect(result.code).toBe(0);
    const card = new TextDecoder().decode(hub.files.get('me/tiny-gguf')?.get('README.md'));
    expect(card).toContain('A model in GGUF format');
    expect(card).toContain('`tiny.gguf`');
    await expectOnHub(
      'me/tiny-gguf',
      new Map([
        ['tiny.gguf', new Uint8Array(await readFile(gguf))],
        ['README.md', new TextEncoder().encode(card)],
      ]),
    );
    const other = join(dir, 'notes.txt');
    await writeFile(other, 'x');
    expect((await push({}, other, '--repo', 'me/notes')).stderr).toContain('not something hone push publishes');
  });

  it('a run folder: the adapter, its card and metrics; never the checkpoint', async () => {
    const run = await writeAdapter(join(dir, 'run'));
    await writeFile(join(run, 'README.md'), '# run card\n');
    await writeFile(join(run, 'metrics.jsonl'), '{"type":"train","step":1}\n');
    await mkdir(join(run, 'checkpoint', 'runs'), { recursive: true });
    await writeFile(join(run, 'checkpoint', 'runs', 'trainer.json'), '{}');
    const result = await push({}, run, '--repo', 'me/run', '--private');
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("pushing the run's adapter");
    const expected = await folderFiles(run);
    for (const name of expected.keys()) if (name.startsWith('checkpoint')) expected.delete(name);
    expect([...expected.keys()].sort()).toEqual([
      'README.md',
      'adapter_config.json',
      'adapter_model.safetensors',
      'metrics.jsonl',
    ]);
    await expectOnHub('me/run', expected);

    const unfinished = join(dir, 'unfinished');
    await mkdir(join(unfinished, 'checkpoint'), { recursive: true });
    expect((await push({}, unfinished, '--repo', 'me/u')).stderr).toContain('holds a run that has not finished');
  });

  it('a connection cut mid-upload: the message says to run it again, and the retry finishes without resending', async () => {
    const model = join(dir, 'sharded');
    await mkdir(model, { recursive: true });
    await writeFile(join(model, 'config.json'), '{"model_type": "llama"}');
    for (const i of [1, 2, 3]) await writeFile(join(model, `model-0000${i}-of-00003.safetensors`), randomBytes(40_000));
    hub.cutUploadOnce = true;
    const cut = await push({}, model, '--repo', 'me/sharded', '--private');
    expect(cut.code).toBe(1);
    const stored = [...hub.lfs.keys()].filter((k) => k.startsWith('me/sharded/')).map((k) => k.split('/').at(-1));
    expect(stored.length).toBeGreaterThanOrEqual(1);
    expect(cut.stderr).toContain(
      `hone: the upload to me/sharded was cut off after ${stored.length} of 5 files: run it again to finish; ` +
        'files already uploaded are not sent twice\n',
    );
    const [made, puts] = [creates(), putOids().length];
    const retry = await push({}, model, '--repo', 'me/sharded', '--private');
    expect(retry.code).toBe(0);
    expect(creates()).toBe(made);
    const resent = putOids().slice(puts);
    expect(resent.length).toBe(3 - stored.length);
    for (const oid of resent) expect(stored).not.toContain(oid);
    const expected = await folderFiles(model);
    expected.set('README.md', hub.files.get('me/sharded')?.get('README.md') as Uint8Array);
    await expectOnHub('me/sharded', expected);
  });

  it('refused in one line: no token, a read-only token, someone else’s repo, an unreachable Hub', async () => {
    const adapter = await writeAdapter(join(dir, 'refused'));
    const noToken = await push({ HF_TOKEN: '' }, adapter, '--repo', 'me/refused');
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain(
      'hone: publishing needs an access token with write permission: Hub settings in the studio, HF_TOKEN for hone\n',
    );
    const readOnly = await push({ HF_TOKEN: 'hf_read' }, adapter, '--repo', 'me/refused');
    expect(readOnly.stderr).toContain('hone: the access token is read-only: publishing to me/refused needs one');
    hub.files.set('someone/theirs', new Map());
    const theirs = await push({}, adapter, '--repo', 'someone/theirs');
    expect(theirs.stderr).toContain('hone: someone/theirs belongs to someone else, or the token may not write to it');
    expect(hub.files.get('someone/theirs')?.size).toBe(0);
    expect(hub.repos.has('me/refused')).toBe(false);

    const stopped = await startHubServer();
    await stopped.close();
    const offline = await push({ HONE_HUB_URL: stopped.url }, adapter, '--repo', 'me/refused');
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain(`hone: the Hub at ${stopped.url} can't be reached (offline?)`);
  });
});
