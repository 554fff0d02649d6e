import { expect, type Page, test } from '@playwright/test';

/** The page's own width never exceeds the window's: nothing to scroll sideways. */
async function fitsWidth(page: Page) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  expect(scroll).toBeLessThanOrEqual(inner);
}

test('the studio is usable from the keyboard: steps, the demo model, loading it', async ({ page }) => {
  await page.goto('/');
  // Tab reaches the steps, in order, with a visible focus ring.
  const focused = async () =>
    page.evaluate(() => (document.activeElement?.tagName === 'BUTTON' ? document.activeElement.textContent : '') ?? '');
  for (let i = 0; i < 8 && !(await focused()).includes('Data'); i++) await page.keyboard.press('Tab');
  expect(await focused()).toContain('Data');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
  expect(outline).not.toBe('none');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('button', { name: /Data/ })).toHaveAttribute('aria-current', 'step');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('button', { name: /Model/ })).toHaveAttribute('aria-current', 'step');
  // The demo model, picked and loaded without a mouse.
  await page.getByLabel('Offline demo model (hone-tiny)').focus();
  await page.keyboard.press('Space');
  await expect(page.getByLabel('Offline demo model (hone-tiny)')).toBeChecked();
  await page.getByRole('button', { name: 'Load', exact: true }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
});

test('the layout holds from a laptop screen to a wide monitor, in light and dark themes', async ({ page }) => {
  for (const [width, height] of [
    [1024, 700],
    [1920, 1080],
  ]) {
    await page.setViewportSize({ width, height });
    await page.goto('/');
    await fitsWidth(page);
    for (const step of [/Data/, /Train/, /Compare/, /Export/]) {
      await page.getByRole('button', { name: step }).click();
      await fitsWidth(page);
    }
  }
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto('/');
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = (background.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number);
  expect(0.2126 * r + 0.7152 * g + 0.0722 * b).toBeLessThan(60);
  await page.screenshot({ path: 'test-results/dark-theme.png', fullPage: true });
});
