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
