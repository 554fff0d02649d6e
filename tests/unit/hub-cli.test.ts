import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { honeWithEnv } from '../helpers/hone-cli';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { tempDir, writeModelFolder } from '../helpers/model-folder';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

let hub: HubServer;
let env: Record<string, string>;

beforeAll(async () => {
  hub = await startHubServer();
  const dir = await tempDir('hone-hub-cli-');
  const config = tinyConfig({ vocabSize: 300 });
  const model = await writeModelFolder(join(dir, 'model'), config, randomWeights(config, 7));
  const tokenizer = tinyTokenizerFiles();
  // No generation_config.json: its absence has to be remembered for the model to load offline.
  delete tokenizer['generation_config.json'];
  for (const [name, text] of Object.entries(tokenizer)) await writeFile(join(model, name), text);
  const files = new Map<string, Uint8Array>();
  for (const name of ['config.json', 'model.safetensors', ...Object.keys(tokenizer)])
    files.set(name, new Uint8Array(await readFile(join(model, name))));
  hub.files.set('org/tiny', files);
  hub.files.set('org/readme-only', new Map([['README.md', new TextEncoder().encode('# not a model\n')]]));
  env = { HONE_HUB_URL: hub.url, HONE_CACHE_DIR: join(dir, 'cache'), HF_TOKEN: '', HONE_HUB_TOKEN: '' };
});
afterAll(() => hub.close());

const generate = (model: string, extraEnv: Record<string, string> = {}) =>
  honeWithEnv(
    { ...env, ...extraEnv },
    'generate',
    '--model',
    model,
    '--prompt-ids',
    '[1]',
    '--max-new-tokens',
    '4',
    '--temperature',
    '0',
    '--json',
  );

describe('hone with hub:ORG/NAME when the Hub is in trouble', () => {
  it('says what is wrong and what to do: no repo, no revision, no config.json, gated', async () => {
    const absent = await generate('hub:org/absent');
    expect(absent.code).toBe(1);
    expect(absent.stderr).toContain('hone: no repo org/absent on the Hub: check the id\n');
    expect((await generate('hub:org/tiny@v2')).stderr).toContain(
      'hone: no revision v2 of org/tiny on the Hub: check the name after @',
    );
    expect((await generate('hub:org/readme-only')).stderr).toContain(
      'hone: the repo org/readme-only has no config.json: is it a model repo?',
    );
    hub.token = 'secret';
    try {
      expect((await generate('hub:org/tiny')).stderr).toContain(
        'hone: org/tiny is gated or private (HTTP 401): accept the license on the Hub and set an access token in Hub ' +
          'settings (HF_TOKEN for hone)',
      );
    } finally {
      hub.token = null;
    }
  });

  it('a model downloaded once generates from the cache with the Hub gone; one never downloaded says so', async () => {
    const first = await generate('hub:org/tiny');
    expect(first.code, first.stderr).toBe(0);
    const ids = JSON.parse(first.stdout).ids;
    expect(ids).toHaveLength(4);
    const requests = hub.requests.length;
    await hub.close();

    const offline = await generate('hub:org/tiny');
    expect(offline.code, offline.stderr).toBe(0);
    expect(JSON.parse(offline.stdout).ids).toEqual(ids);
    expect(hub.requests.length).toBe(requests);

    const never = await generate('hub:org/never-seen');
    expect(never.code).toBe(1);
    expect(never.stderr).toContain(
      `hone: the Hub at ${hub.url} can't be reached (offline?): try again, set a mirror in Hub settings ` +
        '(HONE_HUB_URL for hone), or use the offline demo model (hone-tiny)\n',
    );
  });
});
