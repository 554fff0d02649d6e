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
 * each field) on a constant schedule, and waits for the run to finish.
 */
export async function trainOnFile(page: Page, file: string, settings: [label: string, value: string][]): Promise<void> {
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
  await form.getByLabel(/^Schedule/).selectOption('constant');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished', { timeout: 300_000 });
}
