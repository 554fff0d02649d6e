/**
 * The Export step's GGUF and Publish on a run trained in the page: the downloaded zip's GGUF, loaded by llama.cpp,
 * continues a prompt greedily as Hone's float64 reference does with the run's adapter; Publish sends the adapter to
 * a Hub stand-in on 127.0.0.1, byte for byte as the adapter downloads.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { folderReader } from '../../cli/folder';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { loadTokenizer } from '../../core/tokenizer';
import { filesReader } from '../../workers/engine/model-loader';
import { capitalsJsonl } from '../helpers/datasets';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { llamaGreedy } from '../helpers/llama-cpp';
import { tempDir } from '../helpers/model-folder';
import { referenceGreedy } from '../helpers/reference-greedy';
import { referenceLora } from '../helpers/reference-lora';
import { loadDemoModel } from '../helpers/studio';

const HONE_TINY = 'public/models/hone-tiny';
let hub: HubServer;
let dir: string;

test.beforeAll(async () => {
  hub = await startHubServer();
  hub.users.set('hf_write', { name: 'me', role: 'write' });
  dir = await tempDir();
});
test.afterAll(() => hub.close());

/** Downloads what the button gives, unzipped: its files by name, the wrapping folder taken off. */
async function downloaded(page: Page, button: string): Promise<{ name: string; files: Map<string, Uint8Array> }> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: button }).click(),
  ]);
  const path = join(dir, download.suggestedFilename());
  await download.saveAs(path);
  const files = unzipSync(new Uint8Array(await readFile(path)));
  const name = download.suggestedFilename().replace(/\.zip$/, '');
  return { name, files: new Map(Object.entries(files).map(([p, b]) => [p.slice(name.length + 1), b])) };
}

test('a GGUF of the run downloads with its Modelfile and runs in llama.cpp as in Hone; Publish reaches the Hub', async ({
  page,
}) => {
  test.setTimeout(300_000);
  const data = join(dir, 'capitals.jsonl');
  await writeFile(
    data,
    capitalsJsonl([
      ['Capital of France?', 'Paris.'],
      ['Capital of Peru?', 'Lima.'],
    ]),
  );
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(data);
  await page.getByRole('button', { name: /Train/ }).click();
  for (const [label, value] of [
    ['LoRA rank', '4'],
    ['Max steps (empty: by epochs)', '2'],
  ]) {
    const field = page.getByTestId('train-settings').getByLabel(label, { exact: true });
    await field.fill(value);
    await field.blur();
  }
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await page.getByRole('button', { name: /Export/ }).click();
  const adapter = await downloaded(page, 'Download the adapter (.zip)');

  const gguf = page.getByTestId('export-gguf');
  await gguf.getByLabel('Weights').selectOption('f32');
  await expect(gguf.getByTestId('gguf-size')).toHaveText(/^The GGUF will be [\d.]+ MiB, in a zip/);
  await page.screenshot({ path: 'test-results/export-gguf.png', fullPage: true });
  const zipped = await downloaded(page, 'Download the GGUF (.zip)');
  expect(zipped.name).toBe('hone-tiny-sft-step2-f32');
  expect([...zipped.files.keys()]).toEqual(['hone-tiny-sft-step2-f32.gguf', 'Modelfile', 'README.md']);
  expect(new TextDecoder().decode(zipped.files.get('Modelfile'))).toContain('FROM ./hone-tiny-sft-step2-f32.gguf');
  await expect(gguf.getByTestId('gguf-result')).toContainText('ollama create NAME -f Modelfile');

  // llama.cpp on the downloaded file, against the reference with the downloaded adapter.
  const model = join(dir, 'model.gguf');
  await writeFile(model, zipped.files.get('hone-tiny-sft-step2-f32.gguf') as Uint8Array);
  const read = folderReader(HONE_TINY);
  const checkpoint = await loadCheckpoint(read, 'hone-tiny');
  const weights = new Map<string, Float64Array>();
  for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
  const adapterRead = filesReader(
    [...adapter.files].map(([path, bytes]) => ({ path, file: new Blob([bytes as Uint8Array<ArrayBuffer>]) })),
  );
  const lora = referenceLora(await loadAdapter(adapterRead, 'adapter', checkpoint.config));
  const prompt = (await loadTokenizer(read, 'hone-tiny')).encode('<|im_start|>user\nCapital of France?<|im_end|>\n');
  const { vocabSize } = checkpoint.config;
  const got = await llamaGreedy(model, prompt, 6, vocabSize, { kvCache: 'F32' });
  expect(got.ids).toEqual(referenceGreedy(checkpoint.config, weights, lora, prompt, 6));

  // Publish the adapter to a new private repo under the token's account.
  const publish = page.getByTestId('publish');
  await expect(publish).toContainText('Publishing needs an access token with write permission');
  await expect(publish.getByRole('button', { name: 'Publish' })).toBeDisabled();
  await publish.getByLabel('Hub URL').fill(hub.url);
  await publish.getByLabel('Hub URL').blur();
  await publish.getByLabel(/Access token/).fill('hf_write');
  await publish.getByLabel(/Access token/).blur();
  await publish.getByLabel(/^Repo/).fill('capitals');
  await publish.getByRole('button', { name: 'Publish' }).click();
  await expect(publish.getByTestId('publish-result')).toHaveText(`Published to a new repo: ${hub.url}/me/capitals`);
  expect(hub.repos.get('me/capitals')).toEqual({ private: true });
  const stored = hub.files.get('me/capitals') as Map<string, Uint8Array>;
  expect([...stored.keys()].sort()).toEqual([...adapter.files.keys()].sort());
  for (const [name, bytes] of adapter.files)
    expect(Buffer.from(stored.get(name) as Uint8Array).equals(bytes), name).toBe(true);
  await page.screenshot({ path: 'test-results/export-published.png', fullPage: true });

  // Publishing again updates the same repo; a token the Hub rejects says so.
  await publish.getByLabel(/Access token/).fill('hf_wrong');
  await publish.getByLabel(/Access token/).blur();
  await publish.getByRole('button', { name: 'Publish' }).click();
  await expect(publish.getByRole('alert')).toContainText('rejected the access token (HTTP 401)');
});
