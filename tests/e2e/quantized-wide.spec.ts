/**
 * A 4-bit base at a real model's width in the studio: two of Llama 3.2 1B's layers in a BF16 checkpoint (244 MB)
 * from a local Hub stand-in, quantized at load in the worker, trained on one conversation until it is learnt, then
 * asked it in Compare, decoding over the 4-bit weights.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { oneConversationJsonl } from '../helpers/datasets';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { hubModelFiles, llama1bLayersConfig, tempDir, writeRandomBf16Folder } from '../helpers/model-folder';
import { askGreedy, pickHubRepo, trainOnFile } from '../helpers/studio';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

let hub: HubServer;
let data: string;
const question = 'Code word for cedar?';
const answer = 'falcon';

test.beforeAll(async () => {
  const dir = await tempDir();
  hub = await startHubServer();
  // Untied: a random tied head would score each token's own embedding ~600 above the rest.
  const config = { ...llama1bLayersConfig(), tieWordEmbeddings: false };
  const folder = await writeRandomBf16Folder(join(dir, 'model'), config, 11);
  hub.files.set('org/llama-1b-layers', await hubModelFiles(folder, tinyTokenizerFiles()));
  data = join(dir, 'one.jsonl');
  await writeFile(data, oneConversationJsonl(question, answer, 4));
});
test.afterAll(() => hub.close());

test('a model of Llama 3.2 1B’s width loads at 4 bits, learns a conversation and answers it', async ({ page }) => {
  test.setTimeout(600_000);
  await page.goto('/');
  await pickHubRepo(page, hub.url, 'org/llama-1b-layers');
  await page
    .getByTestId('base-precision')
    .getByRole('radio', { name: /^4-bit \(/ })
    .check();
  await page.getByRole('button', { name: 'Download and load' }).click();
  const loaded = page.getByTestId('model-loaded');
  await expect(loaded).toContainText('hub:org/llama-1b-layers is on the GPU', { timeout: 180_000 });
  await expect(loaded).toContainText('its projections at 4-bit');
  await page.screenshot({ path: 'test-results/quantized-wide-model.png', fullPage: true });

  await page.getByRole('button', { name: /Data/ }).click();
  await trainOnFile(
    page,
    data,
    [
      ['Sequence length', '64'],
      ['Learning rate', '0.003'],
      ['Warm-up (steps, or fraction)', '0'],
      ['Batch size', '1'],
      ['Max steps (empty: by epochs)', '6'],
    ],
    'cosine',
  );

  await page.getByRole('button', { name: /Compare/ }).click();
  await askGreedy(page, question, 16);
  await expect(page.getByTestId('conversation-tuned')).toContainText(answer);
  await page.screenshot({ path: 'test-results/quantized-wide.png', fullPage: true });
});
