import { expect, test } from '@playwright/test';

test('the studio shell shows the five steps and a GPU verified by a kernel run in the worker', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto('/');

  const nav = page.getByRole('navigation', { name: 'Studio steps' });
  for (const step of ['Model', 'Data', 'Train', 'Compare', 'Export']) {
    await expect(nav.getByRole('button', { name: new RegExp(step) })).toBeVisible();
  }

  const panel = page.getByTestId('gpu-panel');
  await expect(panel.getByTestId('self-test')).toHaveAttribute('data-passed', 'true');
  await expect(panel).toContainText('Software (CPU) adapter');
  await expect(panel).toContainText('Largest storage binding');

  // Navigation works from the keyboard.
  await nav.getByRole('button', { name: /Train/ }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { level: 1, name: 'Train' })).toBeVisible();
  await expect(nav.getByRole('button', { name: /Train/ })).toHaveAttribute('aria-current', 'step');

  await page.getByRole('button', { name: /Model/ }).click();
  await page.screenshot({ path: 'test-results/app-shell.png', fullPage: true });
  expect(errors).toEqual([]);
});
