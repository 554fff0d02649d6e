/**
 * A Gemma 3 model in the studio: a random tiny Gemma 3 with a Gemma-shaped tokenizer, served by a local Hub
 * stand-in, loads from the Hub, trains on a dropped file, and answers in Compare through its chat template until
 * its end of turn.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { codeWordsJsonl } from '../helpers/datasets';
import { writeGemmaFolder } from '../helpers/gemma-model';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { tempDir } from '../helpers/model-folder';
import { askGreedy, pickHubRepo, trainCodeWords } from '../helpers/studio';

let hub: HubServer;
let codes: string;

test.beforeAll(async () => {
  const dir = await tempDir();
  hub = await startHubServer();
  const { files } = await writeGemmaFolder(join(dir, 'model'));
  hub.files.set('org/gemma-tiny', files);
  // The same model under another name: Evaluate's other model, downloaded for its turn.
  hub.files.set('org/gemma-copy', files);
  codes = join(dir, 'codes.jsonl');
  await writeFile(codes, codeWordsJsonl());
});
test.afterAll(() => hub.close());

test('a Gemma 3 model from the Hub trains and chats', async ({ page }) => {
  test.setTimeout(300_000);
  await page.goto('/');
  await pickHubRepo(page, hub.url, 'org/gemma-tiny');
  await expect(page.getByTestId('model-facts')).toContainText('gemma3_text, 3 layers');
  await page.getByRole('button', { name: 'Download and load' }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hub:org/gemma-tiny is on the GPU');
  await expect(page.getByTestId('model-loaded')).toContainText('with a chat template');

  await page.getByRole('button', { name: /Data/ }).click();
  expect(await trainCodeWords(page, codes)).toBeLessThan(3);

  await page.getByRole('button', { name: /Compare/ }).click();
  await askGreedy(page, 'Code word for cedar?', 20);
  const tuned = page.getByTestId('conversation-tuned');
  // The tuned model answers a word and ends its turn (not cut at the 20-token limit).
  await expect(page.getByTestId('answer-tuned')).toHaveText(/^\S+$/);
  await expect(tuned).not.toContainText('cut at the max new tokens');
  await page.screenshot({ path: 'test-results/gemma.png', fullPage: true });

  // Evaluate beside another model from the Hub, read for its turn: its download shows, and it answers as the base.
  const evaluate = page.getByTestId('evaluate');
  await evaluate.getByLabel(/Or examples from a file/).setInputFiles(codes);
  await evaluate.getByLabel(/Another model/).selectOption('hub');
  await evaluate.getByLabel("Other model's Hub repo").fill('org/gemma-copy');
  hub.throttleBytes = 512;
  await evaluate.getByRole('button', { name: 'Evaluate' }).click();
  await expect(evaluate.getByTestId('eval-download')).toContainText('Downloading the other model: model.safetensors');
  hub.throttleBytes = null;
  const summary = evaluate.getByTestId('eval-summary');
  await expect(summary).toContainText('hub:org/gemma-copy', { timeout: 120_000 });
  const chrF = (await summary.getByRole('row').filter({ hasText: 'chrF' }).getByRole('cell').allTextContents()).slice(
    1,
  );
  expect(chrF[2]).toBe(chrF[0]);
});
