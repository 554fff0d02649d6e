import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, type Page, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { capitalsJsonl, ordersJsonl } from '../helpers/datasets';
import { tempDir } from '../helpers/model-folder';
import { meanTokenWeightOnnx } from '../helpers/onnx-model';
import { loadDemoModel, pickDemoModel } from '../helpers/studio';

let chat: string;
let prefs: string;

test.beforeAll(async () => {
  chat = join(await tempDir(), 'capitals.jsonl');
  await writeFile(
    chat,
    capitalsJsonl([
      ['Capital of France?', 'Paris.'],
      ['Capital of Spain?', 'Madrid.'],
      ['Capital of Italy?', 'Rome.'],
      ['Capital of Peru?', 'Lima.'],
      ['Capital of Chile?', 'Santiago.'],
    ]),
  );
  prefs = join(await tempDir(), 'orders.jsonl');
  await writeFile(
    prefs,
    ordersJsonl(['Raise the sails', 'Mend the nets', 'Clean the deck'], () => 'No.'),
  );
});

async function loadModelAndData(page: Page) {
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(chat);
  await expect(page.getByTestId('dataset-counts')).toHaveText('5 usable, 0 skipped');
  await page.getByRole('button', { name: /Train/ }).click();
}

/** Software WebGPU decodes slowly: a few tokens show the answers work. */
async function shortAnswers(page: Page) {
  await page.getByText('Decoding settings').click();
  const field = page.getByLabel('Max new tokens');
  await field.fill('6');
  await field.blur();
}

async function setNumber(page: Page, label: string, value: string) {
  const field = page.getByTestId('train-settings').getByLabel(label, { exact: true });
  await field.fill(value);
  await field.blur();
}

test('a run trains live in the worker: progress, charts, validation, finished', async ({ page }) => {
  await loadModelAndData(page);
  await expect(page.getByTestId('train-settings').getByLabel('Method')).toHaveValue('sft');
  // What the settings cost, and why the defaults are what they are, before anything runs.
  const estimate = page.getByTestId('run-estimate');
  await expect(estimate).toContainText(/Up to about [\d.]+ [KMG]iB of GPU memory: weights [\d.]+ [KMG]iB/);
  await estimate.getByText('Why these defaults').click();
  await expect(estimate).toContainText('Learning rate 0.01 for a tiny model');
  await setNumber(page, 'LoRA rank', '0');
  await expect(page.getByTestId('train-problems')).toContainText(
    'the LoRA rank must be a whole number of at least 1, not 0',
  );
  await expect(page.getByRole('button', { name: 'Start training' })).toBeDisabled();
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'LoRA alpha', '8');
  await setNumber(page, 'Max steps (empty: by epochs)', '6');
  await setNumber(page, 'Evaluate every (steps)', '3');
  await setNumber(page, 'Checkpoint every (steps)', '4');
  await setNumber(page, 'Sequence length', '64');
  // Gradient checkpointing: less memory for the same run.
  const memory = async () => Number((await estimate.locator('strong').first().textContent())?.split(' ')[0]);
  const kept = await memory();
  await page.getByLabel(/Recompute activations/).check();
  await expect.poll(memory).toBeLessThan(kept);
  // How long it will take, from two of its steps timed on this GPU; a changed setting makes that stale.
  await page.getByRole('button', { name: 'Estimate the time' }).click();
  await expect(page.getByTestId('time-estimate')).toContainText(/^About .+: 6 steps of .+ each, measured on this GPU/);
  await expect(page.getByTestId('time-estimate')).toContainText('of validation');
  await setNumber(page, 'Max steps (empty: by epochs)', '7');
  await expect(page.getByTestId('time-estimate')).toBeHidden();
  await setNumber(page, 'Max steps (empty: by epochs)', '6');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-data')).toContainText('messages data: 4 training sequences, 1 for validation');
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText('Step 6 of 6, loss');
  // The estimate made for these settings is still there after the run.
  await expect(page.getByTestId('time-estimate')).toContainText('6 steps of');
  await expect(page.getByTestId('chart-Loss').locator('canvas')).toBeVisible();
  await expect(page.getByTestId('chart-Loss')).toContainText('validation');
  await page.screenshot({ path: 'test-results/train-step.png', fullPage: true });

  // The run's adapter answers beside the base model, on the held-out record, with the dataset's answer shown.
  await page.getByRole('button', { name: /Compare/ }).click();
  await shortAnswers(page);
  await page.getByLabel('Or a held-out prompt from the validation split').selectOption({ index: 1 });
  await expect(page.getByLabel('Prompt', { exact: true })).toHaveValue(/^Capital of \w+\?$/);
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('references')).toContainText(/Answer: \w+\./);
  await expect(page.getByTestId('conversation-base')).toContainText(/tokens\/s/);
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);

  // The finished run's checkpoints stay to compare: the one at step 4, and its end at step 6.
  const steps = page.getByLabel('Checkpoint step');
  await expect(steps.locator('option')).toHaveText(['4', '6']);
  await steps.selectOption('4');
  await expect(page.getByLabel('A kept checkpoint')).toBeChecked();
  await page.getByLabel('Prompt', { exact: true }).fill('Capital of Chile?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned').getByText(/tokens\/s/)).toHaveCount(2);
});

test('a paused run survives a reload and resumes from its checkpoint', async ({ page }) => {
  await loadModelAndData(page);
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Max steps (empty: by epochs)', '200');
  await setNumber(page, 'Checkpoint every (steps)', '2');
  // Steps take a fraction of a second on the demo model: poll the step reached rather than expect one text.
  const stepReached = async () =>
    Number((await page.getByTestId('run-progress').textContent())?.match(/Step (\d+) of 200/)?.[1] ?? 0);
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect.poll(stepReached).toBeGreaterThanOrEqual(3);
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Paused');
  const pausedAt = await stepReached();

  // The page comes back on the Train step with the model loaded again (the session is restored).
  await page.reload();
  const saved = page.getByTestId('saved-run');
  await expect(saved).toContainText(`An interrupted SFT run on hone-tiny (capitals.jsonl) stopped at step ${pausedAt}`);
  await expect(saved.getByRole('button', { name: 'Resume the run' })).toBeEnabled();
  // The saved checkpoint's adapter can answer in Compare before the run goes on.
  await page.getByRole('button', { name: /Compare/ }).click();
  await shortAnswers(page);
  await page.getByLabel('A kept checkpoint').check();
  await expect(page.getByLabel('Checkpoint step')).toHaveValue(String(pausedAt));
  await page.getByLabel('Prompt', { exact: true }).fill('Capital of Peru?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);
  await page.getByRole('button', { name: /Train/ }).click();
  await page.getByTestId('saved-run').getByRole('button', { name: 'Resume the run' }).click();
  await expect.poll(stepReached).toBeGreaterThanOrEqual(pausedAt + 2);
  await page.getByRole('button', { name: 'Stop' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Stopped');
  // A stopped run is not offered again.
  await page.reload();
  await expect(page.getByTestId('step-state-model')).toHaveText('✓ hone-tiny');
  await expect(page.getByTestId('run-panel')).toHaveCount(0);
  await expect(page.getByTestId('saved-run')).toHaveCount(0);
});

test('preference pairs train with DPO, picked for their format', async ({ page }) => {
  await loadModelAndData(page);
  await expect(page.getByTestId('train-settings').getByLabel('Method')).toHaveValue('sft');
  // Other data, of another shape: the method follows it.
  await page.getByRole('button', { name: /Data/ }).click();
  await page.getByLabel('choose files').setInputFiles(prefs);
  await expect(page.getByTestId('dataset-counts')).toHaveText('3 usable, 0 skipped');
  await page.getByRole('button', { name: /Train/ }).click();
  await expect(page.getByTestId('train-settings').getByLabel('Method')).toHaveValue('dpo');
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Max steps (empty: by epochs)', '3');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-data')).toContainText('preference data: 3 training pairs, 0 for validation');
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText('Step 3 of 3, loss');
});

test('a reward model trains on preference pairs and charts its held-out accuracy', async ({ page }) => {
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(prefs);
  await expect(page.getByTestId('dataset-counts')).toHaveText('3 usable, 0 skipped');
  const validation = page.getByLabel('Validation (fraction or count)');
  await validation.fill('1');
  await validation.blur();
  await page.getByRole('button', { name: /Train/ }).click();
  await page.getByTestId('train-settings').getByLabel('Method').selectOption('rm');
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Max steps (empty: by epochs)', '2');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-data')).toContainText('preference data: 2 training pairs, 1 for validation');
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByText('Validation accuracy')).toBeVisible();
});

test('a policy is optimized against a reward rule written in the page; a broken rule stops with its reason', async ({
  page,
}) => {
  const prompts = join(await tempDir(), 'prompts.jsonl');
  await writeFile(
    prompts,
    ['Raise the sails.', 'Mend the nets.'].map((p) => JSON.stringify({ prompt: p, reference: 'Aye' })).join('\n'),
  );
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(prompts);
  await expect(page.getByTestId('dataset-counts')).toHaveText('2 usable, 0 skipped');
  const validation = page.getByLabel('Validation (fraction or count)');
  await validation.fill('0');
  await validation.blur();
  await page.getByRole('button', { name: /Train/ }).click();
  await expect(page.getByTestId('train-settings').getByLabel('Method')).toHaveValue('grpo');
  await setNumber(page, 'LoRA rank', '4');
  // Software WebGPU decodes slowly, token by token: one prompt a step, two short completions.
  await setNumber(page, 'Batch size', '1');
  await setNumber(page, 'Completions per prompt', '2');
  await setNumber(page, 'Longest completion (tokens)', '2');
  await setNumber(page, 'Max steps (empty: by epochs)', '2');
  const rule = page.getByLabel('Reward rule');
  await expect(rule).toContainText('(prompt, completion, reference) =>');
  await rule.fill('(prompt, completion) => completion.length');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-data')).toContainText('rl_prompts data: 2 training prompts, 0 for validation');
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText(/Step 2 of 2, loss -?[\d.]+, reward [\d.]+/);
  await expect(page.getByText('KL to the base model')).toBeVisible();

  await rule.fill('(prompt, completion) => { throw new Error("no score today"); }');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Failed');
  await expect(page.getByTestId('run-panel')).toContainText('the reward rule rule.js: no score today');
});

test('a policy is optimized against an ONNX reward model, kept with the run across a reload', async ({ page }) => {
  const dir = await tempDir();
  const prompts = join(dir, 'prompts.jsonl');
  await writeFile(prompts, `${JSON.stringify({ prompt: 'Raise the sails.' })}\n`);
  // Every token weighs 1, so every completion scores exactly 1; no tokenizer beside it: the policy's reads the text.
  const onnx = join(dir, 'onnx-reward');
  await mkdir(onnx);
  await writeFile(join(onnx, 'model.onnx'), meanTokenWeightOnnx(new Float32Array(4096).fill(1)));
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(prompts);
  const validation = page.getByLabel('Validation (fraction or count)');
  await validation.fill('0');
  await validation.blur();
  await page.getByRole('button', { name: /Train/ }).click();
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Batch size', '1');
  await setNumber(page, 'Completions per prompt', '2');
  await setNumber(page, 'Longest completion (tokens)', '2');
  // Room to pause before the end, however fast the steps go.
  await setNumber(page, 'Max steps (empty: by epochs)', '6');
  await setNumber(page, 'Checkpoint every (steps)', '1');
  await page.getByLabel('An ONNX reward model folder').setInputFiles(onnx);
  await expect(page.getByTestId('reward-picker')).toContainText('An ONNX reward model: onnx-reward (1 files)');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-progress')).toContainText(/Step [1-4] of 6, loss -?[\d.]+, reward 1.000/);
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Paused');

  // The reward model's folder was saved with the run: after a reload the run goes on with it.
  await page.reload();
  await page.getByTestId('saved-run').getByRole('button', { name: 'Resume the run' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText('Step 6 of 6');
  await expect(page.getByTestId('run-progress')).toContainText('reward 1.000');
});

test('every run is kept and listed across a reload, and two runs’ loss curves draw together', async ({ page }) => {
  await loadModelAndData(page);
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Max steps (empty: by epochs)', '2');
  await setNumber(page, 'Sequence length', '64');
  for (const lr of ['0.01', '0.001']) {
    await setNumber(page, 'Learning rate', lr);
    await page.getByRole('button', { name: 'Start training' }).click();
    await expect(page.getByTestId('run-status')).toHaveText('Finished');
  }
  const runs = page.getByTestId('runs-list');
  await expect(runs.locator('tbody tr')).toHaveCount(2);
  await expect(runs.locator('tbody tr').first()).toContainText('capitals.jsonl');
  await expect(runs.locator('tbody tr').first()).toContainText('2 of 2');

  await page.reload();
  await page.getByRole('button', { name: /Train/ }).click();
  await expect(runs.locator('tbody tr')).toHaveCount(2);
  for (const box of await runs.getByRole('checkbox').all()) await box.check();
  await expect(page.getByTestId('chart-Training loss, runs compared')).toBeVisible();
  await expect(page.getByTestId('chart-Training loss, runs compared')).toContainText('SFT');
  await page.screenshot({ path: 'test-results/runs-list.png', fullPage: true });

  // The older run (learning rate 0.01) answers in Compare and exports, not only the newest.
  await pickDemoModel(page);
  await page.getByRole('button', { name: /Compare/ }).click();
  await shortAnswers(page);
  const kept = page.getByLabel('Which run');
  await expect(kept.locator('option')).toHaveCount(2);
  const older = (await kept.locator('option').nth(1).getAttribute('value')) ?? '';
  await kept.selectOption(older);
  await expect(page.getByLabel('A kept checkpoint')).toBeChecked();
  await expect(page.getByLabel('Checkpoint step')).toHaveValue('2');
  await page.getByLabel('Prompt', { exact: true }).fill('Capital of Peru?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);

  await page.getByRole('button', { name: /Export/ }).click();
  await page.getByLabel('Which run').selectOption(older);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the adapter (.zip)' }).click(),
  ]);
  const zip = unzipSync(new Uint8Array(await readFile(await download.path())));
  const card = new TextDecoder().decode(zip['hone-tiny-sft-step2/README.md']);
  expect(card).toMatch(/learning rate \| 0\.01 \|/);
});
