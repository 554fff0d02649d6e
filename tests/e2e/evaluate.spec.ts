/**
 * Evaluate in the Compare step, on a task the demo model cannot know (code words mapped at random): after a short
 * run the tuned model answers them exactly and the base does not, and finds them far less surprising (perplexity);
 * another model (the demo model read again) answers as the base; the report is kept with the run across a reload.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { parseModelConfig } from '../../core/model-config';
import { codeWordsJsonl } from '../helpers/datasets';
import { randomRewardModel, tempDir } from '../helpers/model-folder';
import { loadDemoModel, trainOnFile } from '../helpers/studio';

/** A random reward model's PEFT folder for the demo model. */
async function rewardModelFolder(dir: string): Promise<string> {
  const config = parseModelConfig(JSON.parse(await readFile('public/models/hone-tiny/config.json', 'utf8')));
  const folder = join(dir, 'rm');
  await mkdir(folder);
  for (const { path, bytes } of randomRewardModel(config, 3)) await writeFile(join(folder, path), bytes);
  return folder;
}

test('the tuned model scores above its base on exact match, and the report survives a reload', async ({ page }) => {
  test.setTimeout(420_000);
  const dir = await tempDir();
  const codes = join(dir, 'codes.jsonl');
  await writeFile(codes, codeWordsJsonl());
  await loadDemoModel(page, /Data/);
  await trainOnFile(page, codes, [
    ['Learning rate', '0.005'],
    ['Warm-up (steps, or fraction)', '2'],
    ['Batch size', '6'],
    ['Max steps (empty: by epochs)', '40'],
  ]);

  await page.getByRole('button', { name: /Compare/ }).click();
  const evaluate = page.getByTestId('evaluate');
  // Nothing is held out, so the examples come from a file: the training data, the mapping only training teaches.
  await expect(evaluate.getByTestId('eval-examples')).toContainText('The 0 held-out examples');
  await page.getByText('Decoding settings').click();
  await page.getByLabel('Max new tokens').fill('6');
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Temperature').blur();
  await evaluate.getByLabel(/Or examples from a file/).setInputFiles(codes);
  await expect(evaluate.getByTestId('eval-examples')).toContainText('6 examples from codes.jsonl');
  // The run's model is checked as the Compare step's tuned side; the demo model, read again, answers too.
  const contestants = evaluate.getByTestId('eval-contestants');
  await expect(contestants.getByLabel('this run', { exact: true })).toBeChecked();
  await contestants.getByLabel(/Another model/).selectOption('bundled');
  await evaluate.getByLabel('Perplexity').check();
  await evaluate.getByText('A JavaScript rule to score the answers too').click();
  await evaluate.getByLabel('Scoring rule').fill('(prompt, completion) => completion.length');
  // A reward model (a random one, over the demo model) scores each answer too.
  await evaluate.getByText('A reward model to score the answers too').click();
  await evaluate.getByLabel('A reward model folder', { exact: true }).setInputFiles(await rewardModelFolder(dir));
  await expect(evaluate.getByTestId('reward-picker')).toContainText('A reward model: rm (2 files)');
  await evaluate.getByRole('button', { name: 'Evaluate' }).click();
  const summary = evaluate.getByTestId('eval-summary');
  await expect(summary).toBeVisible({ timeout: 300_000 });
  const cells = async (metric: string) =>
    (await summary.getByRole('row').filter({ hasText: metric }).getByRole('cell').allTextContents())
      .slice(1)
      .map((t) => Number.parseFloat(t));
  const [base, tuned, other] = await cells('Exact match');
  expect(base).toBe(0);
  expect(tuned).toBeGreaterThanOrEqual(5 / 6 - 1e-9);
  expect(other).toBe(0);
  const [basePerplexity, tunedPerplexity, otherPerplexity] = await cells('Perplexity');
  expect(tunedPerplexity).toBeLessThan(basePerplexity / 4);
  expect(otherPerplexity).toBe(basePerplexity);
  await expect(summary).toContainText(/this run against base, Exact match: [56] better/);
  await expect(summary).toContainText(/this run against base, Perplexity: 6 better/);
  await expect(summary.getByRole('row').filter({ hasText: 'Rule' })).toHaveCount(1);
  const [baseReward, , otherReward] = await cells('Reward');
  expect(otherReward).toBe(baseReward);
  await expect(summary).toContainText(/this run against base, Reward: \d better/);
  await expect(evaluate.getByTestId('eval-chart').locator('figure')).toHaveCount(6);
  const table = evaluate.getByTestId('eval-table');
  await expect(table.getByRole('row')).toHaveCount(7);
  await expect(table).toContainText('codes.jsonl:1');
  await page.screenshot({ path: 'test-results/evaluate.png', fullPage: true });

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    evaluate.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  const csv = await readFile((await download.path()) as string, 'utf8');
  const scores = (name: string) =>
    ['answer', 'exactMatch', 'contains', 'chrF', 'perplexity', 'rule', 'reward'].map((m) => `${name} ${m}`).join(',');
  expect(csv.split('\r\n')[0]).toBe(
    `id,prompt,reference,${scores('base')},${scores('this run')},${scores('hone-tiny (another copy)')}`,
  );
  expect(csv.split('\r\n')).toHaveLength(7);

  await page.reload();
  await page.getByRole('button', { name: /Compare/ }).click();
  await expect(page.getByTestId('eval-summary')).toContainText('this run against base, Exact match');
  await expect(page.getByTestId('eval-table').getByRole('row')).toHaveCount(7);
});
