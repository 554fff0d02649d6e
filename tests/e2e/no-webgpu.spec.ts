import { expect, test } from '@playwright/test';

test('without WebGPU the page says so and what to do, instead of failing blankly', async ({ page }) => {
  await page.goto('/');
  const alert = page.getByTestId('no-webgpu');
  await expect(alert).toBeVisible();
  await expect(alert).toContainText('enable-unsafe-webgpu');
  await expect(alert).toContainText('Chrome');
  // The rest of the studio still renders.
  await expect(page.getByRole('navigation', { name: 'Studio steps' })).toBeVisible();
  await page.screenshot({ path: 'test-results/no-webgpu.png', fullPage: true });
});
