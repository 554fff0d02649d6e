import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint } from '../../core/checkpoint';
import { randomLora } from '../../workers/engine/reference/random-model';
import { tempDir, writeAdapterFolder } from '../helpers/model-folder';
import { loadDemoModel } from '../helpers/studio';

let adapter: string;

test.beforeAll(async () => {
  const { config } = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
  adapter = await writeAdapterFolder(
    join(await tempDir(), 'big-adapter'),
    randomLora(config, ['q_proj', 'v_proj', 'down_proj'], 4, 64, false, 9),
    ['q_proj', 'v_proj', 'down_proj'],
  );
});

test('base and tuned answer side by side, streamed, from an imported adapter', async ({ page }) => {
  await loadDemoModel(page, /Compare/);
  await page.getByLabel('import a PEFT adapter folder').setInputFiles(adapter);
  await expect(page.getByTestId('adapter-choice')).toContainText('Imported: big-adapter (rank 4, 12 modules)');
  await page.getByText('Decoding settings').click();
  const temperature = page.getByLabel('Temperature');
  await temperature.fill('0');
  await temperature.blur();
  const maxTokens = page.getByLabel('Max new tokens');
  await maxTokens.fill('12');
  await maxTokens.blur();
  await page.getByLabel('Prompt', { exact: true }).fill('Call me');
  await page.getByRole('button', { name: 'Send' }).click();
  const base = page.getByTestId('conversation-base');
  const tuned = page.getByTestId('conversation-tuned');
  await expect(base).toContainText(/tokens\/s/);
  await expect(tuned).toContainText(/tokens\/s/);
  const baseText = await page.getByTestId('answer-base').textContent();
  const tunedText = await page.getByTestId('answer-tuned').textContent();
  expect(tunedText).not.toBe(baseText);

  // A second turn: each side continues its own conversation.
  await page.getByLabel('Prompt', { exact: true }).fill('And then?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('answer-base')).toHaveCount(2);
  await expect(base.locator('li').nth(1)).toContainText(/tokens\/s/);
  await expect(tuned.locator('li').nth(1)).toContainText(/tokens\/s/);
  await page.screenshot({ path: 'test-results/compare-step.png', fullPage: true });
});

test('the tuned side asks for a trained model when there is none', async ({ page }) => {
  await loadDemoModel(page, /Compare/);
  await page.getByLabel('Prompt', { exact: true }).fill('Hello');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned').getByRole('alert')).toContainText(
    'There is no trained model yet: train one in the Train step, or import an adapter.',
  );
  await expect(page.getByTestId('conversation-base')).toContainText(/tokens\/s/);
});
