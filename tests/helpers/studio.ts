import { expect, type Page } from '@playwright/test';

/** In the page as it is: goes to the Model step and loads the offline demo model onto the GPU. */
export async function pickDemoModel(page: Page): Promise<void> {
  await page.getByRole('button', { name: /Model/ }).click();
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
}

/** Opens the studio, loads the offline demo model onto the GPU, and goes to `step` (a step button's name). */
export async function loadDemoModel(page: Page, step?: RegExp): Promise<void> {
  await page.goto('/');
  await pickDemoModel(page);
  if (step) await page.getByRole('button', { name: step }).click();
}

/**
 * From the Data step: drops `file` with nothing held out, trains it to the end with `settings` (label and value of
 * each field) on `schedule`, and waits for the run to finish.
 */
export async function trainOnFile(
  page: Page,
  file: string,
  settings: [label: string, value: string][],
  schedule: 'constant' | 'cosine' = 'constant',
): Promise<void> {
  await page.getByLabel('choose files').setInputFiles(file);
  const validation = page.getByLabel('Validation (fraction or count)');
  await validation.fill('0');
  await validation.blur();
  await page.getByRole('button', { name: /Train/ }).click();
  const form = page.getByTestId('train-settings');
  for (const [label, value] of settings) {
    await form.getByLabel(label, { exact: true }).fill(value);
    await form.getByLabel(label, { exact: true }).blur();
  }
  await form.getByLabel(/^Schedule/).selectOption(schedule);
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished', { timeout: 300_000 });
}

/**
 * From the Data step: trains on a code-word file (codeWordsJsonl) long and fast enough for a tiny model to learn it
 * (30 steps of 6 at lr 0.02, sequences of 64); returns the run's last training loss.
 */
export async function trainCodeWords(page: Page, file: string): Promise<number> {
  await trainOnFile(page, file, [
    ['Sequence length', '64'],
    ['Learning rate', '0.02'],
    ['Warm-up (steps, or fraction)', '2'],
    ['Batch size', '6'],
    ['Max steps (empty: by epochs)', '30'],
  ]);
  const progress = await page.getByTestId('run-progress').textContent();
  return Number(progress?.match(/loss ([\d.]+)/)?.[1]);
}

/** In the Model step: points the Hub settings at `hubUrl` (a local stand-in) and picks `repo` from it. */
export async function pickHubRepo(page: Page, hubUrl: string, repo: string): Promise<void> {
  await page.getByText('Hub settings').click();
  await page.getByLabel('Hub URL').fill(hubUrl);
  await page.getByLabel('Hub URL').blur();
  await page.getByLabel(/Any Hub repo/).fill(repo);
  await page.getByRole('button', { name: 'Use this repo' }).click();
}

/** In the Compare step: greedy decoding of at most `maxNewTokens`, `prompt` sent, both answers waited for. */
export async function askGreedy(page: Page, prompt: string, maxNewTokens: number): Promise<void> {
  await page.getByText('Decoding settings').click();
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Temperature').blur();
  await page.getByLabel('Max new tokens').fill(String(maxNewTokens));
  await page.getByLabel('Max new tokens').blur();
  await page.getByLabel('Prompt', { exact: true }).fill(prompt);
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);
  await expect(page.getByTestId('conversation-base')).toContainText(/tokens\/s/);
}
