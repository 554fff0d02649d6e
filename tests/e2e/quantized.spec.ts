/**
 * LoRA over a quantized base in the studio: a random model whose rows are whole 4-bit groups, served by a local Hub
 * stand-in, loads at the base precision picked in the Model step (its memory shown at each), trains on a dropped
 * file, answers in Compare, and comes back at that precision after a reload.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { codeWordsJsonl } from '../helpers/datasets';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { hubModelFiles, tempDir, writeModelFolder } from '../helpers/model-folder';
import { askGreedy, pickHubRepo, trainCodeWords } from '../helpers/studio';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

let hub: HubServer;
let codes: string;

test.beforeAll(async () => {
  const dir = await tempDir();
  hub = await startHubServer();
  // Rows of 64 and 128 weights: whole groups of q4's 32 and NF4's 64.
  const config = tinyConfig({
    vocabSize: 300,
    hiddenSize: 64,
    intermediateSize: 128,
    headDim: 16,
    maxPositionEmbeddings: 128,
  });
  const folder = await writeModelFolder(join(dir, 'model'), config, randomWeights(config, 5));
  hub.files.set('org/wide-tiny', await hubModelFiles(folder, tinyTokenizerFiles()));
  codes = join(dir, 'codes.jsonl');
  await writeFile(codes, codeWordsJsonl());
});
test.afterAll(() => hub.close());

test('a model loads over a 4-bit base, trains, answers, and comes back at 4 bits after a reload', async ({ page }) => {
  test.setTimeout(300_000);
  await page.goto('/');
  await pickHubRepo(page, hub.url, 'org/wide-tiny');
  const precision = page.getByTestId('base-precision');
  // A small model defaults to 16-bit; each precision shows its memory.
  await expect(precision.getByRole('radio', { name: /^16-bit .*default/ })).toBeChecked();
  await expect(precision).toContainText('8-bit');
  await precision.getByRole('radio', { name: /^4-bit \(/ }).check();
  await page.getByRole('button', { name: 'Download and load' }).click();
  const loaded = page.getByTestId('model-loaded');
  await expect(loaded).toContainText('hub:org/wide-tiny is on the GPU');
  await expect(loaded).toContainText('its projections at 4-bit');
  await page.screenshot({ path: 'test-results/quantized-model.png', fullPage: true });

  await page.getByRole('button', { name: /Data/ }).click();
  expect(await trainCodeWords(page, codes)).toBeLessThan(3);

  await page.getByRole('button', { name: /Compare/ }).click();
  await askGreedy(page, 'Code word for cedar?', 12);
  await page.screenshot({ path: 'test-results/quantized.png', fullPage: true });
  // Exports say they fold the adapter into the original weights, not the 4-bit copy.
  await page.getByRole('button', { name: /Export/ }).click();
  await expect(page.getByTestId('export-original-weights')).toContainText('not into that copy');

  // The session comes back with the model at the precision it was loaded at.
  await page.reload();
  await page.getByRole('button', { name: /Model/ }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('its projections at 4-bit', { timeout: 60_000 });
  await expect(page.getByTestId('base-precision').getByRole('radio', { name: /^4-bit \(/ })).toBeChecked();
});
