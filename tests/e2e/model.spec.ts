import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { hubModelFiles, tempDir, writeModelFolder } from '../helpers/model-folder';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

let hub: HubServer;
let folder: string;

test.beforeAll(async () => {
  hub = await startHubServer();
  // Room for the tiny tokenizer's 265 tokens.
  const config = tinyConfig({ vocabSize: 300 });
  folder = await writeModelFolder(join(await tempDir(), 'tiny-model'), config, randomWeights(config, 1));
  hub.files.set('org/tiny', await hubModelFiles(folder, tinyTokenizerFiles()));
});
test.afterAll(() => hub.close());

async function pointAtLocalHub(page: import('@playwright/test').Page) {
  await page.getByText('Hub settings').click();
  const url = page.getByLabel('Hub URL');
  await url.fill(hub.url);
  await url.blur();
}

test('a Hub model downloads with progress onto the GPU, and comes from the cache the second time', async ({ page }) => {
  await page.goto('/');
  await pointAtLocalHub(page);
  await page.getByLabel(/Any Hub repo/).fill('org/tiny');
  await page.getByRole('button', { name: 'Use this repo' }).click();
  const facts = page.getByTestId('model-facts');
  await expect(facts).toContainText('hub:org/tiny');
  await expect(facts).toContainText('llama, 2 layers');
  await expect(facts).toContainText('Download');
  await expect(page.getByTestId('model-fit')).toContainText('Fits this GPU');
  // Slow, and cut short once: the bar must show progress, and the loader must resume the transfer.
  hub.throttleBytes = 8192;
  hub.truncateOnce.add('org/tiny/model.safetensors');
  await page.getByRole('button', { name: 'Download and load' }).click();
  await expect(page.getByTestId('download-progress')).toContainText(/model\.safetensors: [\d.]+ KiB of 67 KiB/);
  await expect(page.getByTestId('model-loaded')).toContainText('hub:org/tiny is on the GPU');
  hub.throttleBytes = null;
  expect(hub.requests.some((r) => r.path.endsWith('model.safetensors') && r.range !== null)).toBe(true);
  await expect(page.getByTestId('model-loaded')).toContainText('with a chat template');
  const weightDownloads = () =>
    hub.requests.filter((r) => r.method === 'GET' && r.path.endsWith('model.safetensors')).length;
  expect(weightDownloads()).toBe(2); // the cut transfer and its resumption
  await page.getByText(/Downloaded models/).click();
  await expect(page.getByTestId('cache-panel')).toContainText('org/tiny/main/model.safetensors');
  await page.screenshot({ path: 'test-results/model-step.png', fullPage: true });

  await page.reload();
  await page.getByLabel(/Any Hub repo/).fill('org/tiny');
  await page.getByRole('button', { name: 'Use this repo' }).click();
  await page.getByRole('button', { name: 'Download and load' }).click();
  await expect(page.getByTestId('model-loaded')).toBeVisible();
  expect(weightDownloads()).toBe(2);
});

async function useRepo(page: import('@playwright/test').Page, repo: string) {
  await page.getByLabel(/Any Hub repo/).fill(repo);
  await page.getByRole('button', { name: 'Use this repo' }).click();
}

test('a repo that does not exist, a revision that does not, and a repo with no config.json each say so', async ({
  page,
}) => {
  await page.goto('/');
  await pointAtLocalHub(page);
  const alert = page.getByTestId('model-details').getByRole('alert');
  await useRepo(page, 'org/missing');
  await expect(alert).toHaveText('no repo org/missing on the Hub: check the id');
  await expect(page.getByRole('button', { name: 'Try again' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Use the offline demo model' })).toHaveCount(0);
  await useRepo(page, 'org/tiny@v2');
  await expect(alert).toHaveText('no revision v2 of org/tiny on the Hub: check the name after @');
  hub.files.set('org/readme-only', new Map([['README.md', new TextEncoder().encode('# notes\n')]]));
  await useRepo(page, 'org/readme-only');
  await expect(alert).toHaveText('the repo org/readme-only has no config.json: is it a model repo?');
});

/** The engine worker is up (it answered the cache panel), so cutting the network leaves it running. */
async function engineReady(page: import('@playwright/test').Page) {
  await expect(page.getByText(/Downloaded models \(\d+ files/)).toBeVisible();
}

test('offline, a Hub model says the Hub can’t be reached, and reads again on "Try again"', async ({
  page,
  context,
}) => {
  await page.goto('/');
  await pointAtLocalHub(page);
  await engineReady(page);
  const before = hub.requests.length;
  await context.setOffline(true);
  await page.getByLabel('SmolLM2 135M Instruct').check();
  const alert = page.getByTestId('model-details').getByRole('alert');
  await expect(alert).toHaveText(
    `the Hub at ${hub.url} can't be reached (offline?): try again, set a mirror in Hub settings (HONE_HUB_URL ` +
      'for hone), or use the offline demo model (hone-tiny)',
  );
  await expect(page.getByRole('button', { name: 'Use the offline demo model' })).toBeVisible();
  await page.screenshot({ path: 'test-results/model-offline.png', fullPage: true });
  await useRepo(page, 'org/tiny');
  await expect(alert).toContainText("can't be reached");
  expect(hub.requests.length).toBe(before);
  // Back online, the same pick is read again on "Try again".
  await context.setOffline(false);
  hub.failWith.set('org/tiny/config.json', 503);
  await page.getByRole('button', { name: 'Try again' }).click();
  await expect(alert).toHaveText(`the Hub at ${hub.url} answered HTTP 503 for org/tiny/config.json: try again later`);
  hub.failWith.clear();
  await page.getByRole('button', { name: 'Try again' }).click();
  await expect(page.getByTestId('model-facts')).toContainText('hub:org/tiny');
});

test('a Hub that can’t be reached offers the offline demo model', async ({ page }) => {
  const gone = await startHubServer();
  await gone.close();
  await page.goto('/');
  await page.getByText('Hub settings').click();
  await page.getByLabel('Hub URL').fill(gone.url);
  await page.getByLabel('Hub URL').blur();
  await page.getByLabel('SmolLM2 360M Instruct').check();
  await expect(page.getByTestId('model-details').getByRole('alert')).toContainText(`the Hub at ${gone.url} can't`);
  await page.getByRole('button', { name: 'Use the offline demo model' }).click();
  await expect(page.getByLabel('Offline demo model (hone-tiny)')).toBeChecked();
  await expect(page.getByTestId('model-facts')).toContainText('hone-tiny');
});

test('a Hub model downloaded once loads again with the network off', async ({ page, context }) => {
  await page.goto('/');
  await pointAtLocalHub(page);
  await useRepo(page, 'org/tiny');
  await page.getByRole('button', { name: 'Download and load' }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hub:org/tiny is on the GPU');
  const requests = hub.requests.length;

  // A new page in the same browser profile (the same cache), the network cut once it is up.
  const again = await context.newPage();
  await again.goto('/');
  await engineReady(again);
  await context.setOffline(true);
  await useRepo(again, 'org/tiny');
  await expect(again.getByTestId('model-facts')).toContainText('67 KiB');
  await again.getByRole('button', { name: 'Download and load' }).click();
  await expect(again.getByTestId('model-loaded')).toContainText('hub:org/tiny is on the GPU');
  await expect(again.getByTestId('model-loaded')).toContainText('with a chat template');
  expect(hub.requests.length).toBe(requests);
});

test('a model folder from this computer loads through the same loader', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('choose a folder').setInputFiles(folder);
  await expect(page.getByTestId('model-facts')).toContainText('tiny-model');
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('tiny-model is on the GPU');
});

test('model files dropped onto the page load too', async ({ page }) => {
  await page.goto('/');
  const names = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
  const files = await Promise.all(
    names.map(async (name) => ({ name, bytes: [...new Uint8Array(await readFile(join(folder, name)))] })),
  );
  const transfer = await page.evaluateHandle((list) => {
    const data = new DataTransfer();
    for (const { name, bytes } of list) data.items.add(new File([new Uint8Array(bytes)], name));
    return data;
  }, files);
  await page
    .getByRole('region', { name: 'Model folder on this computer' })
    .dispatchEvent('drop', { dataTransfer: transfer });
  await expect(page.getByTestId('model-facts')).toContainText('dropped files');
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('dropped files is on the GPU');
});

test('the offline demo model that ships with the studio loads with no Hub at all', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  const facts = page.getByTestId('model-facts');
  await expect(facts).toContainText('hone-tiny');
  await expect(facts).toContainText('llama');
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
  await expect(page.getByTestId('model-loaded')).toContainText('with a chat template');
});
