import AxeBuilder from '@axe-core/playwright';
import { expect, type Page, test } from '@playwright/test';
import { loadDemoModel } from '../helpers/studio';

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

/** WCAG 2.1 A and AA problems axe finds on the page as it is, one line each (rule, what, where). */
async function accessibilityProblems(page: Page): Promise<string[]> {
  const { violations } = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  return violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${v.help} at ${n.target.join(' ')}`));
}

test('every step passes an accessibility audit (names, roles, contrast), in light and dark themes', async ({
  page,
}) => {
  await loadDemoModel(page, /Data/);
  await page
    .getByTestId('example-datasets')
    .getByRole('button', { name: /^Instructions/ })
    .click();
  await expect(page.getByTestId('dataset-counts')).toContainText('usable');
  const problems: string[] = [];
  const audit = async (when: string) => {
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const step of [/Model/, /Data/, /Train/, /Compare/, /Export/]) {
        await page.getByRole('button', { name: step }).click();
        for (const problem of await accessibilityProblems(page)) {
          problems.push(`${when}, ${scheme}, ${step.source}: ${problem}`);
        }
      }
    }
  };
  await audit('before training');
  // Again with what a run adds: its charts, the runs list, the checkpoint choice, answers side by side.
  await page.getByRole('button', { name: /Train/ }).click();
  for (const [label, value] of [
    ['Max steps (empty: by epochs)', '2'],
    ['Sequence length', '32'],
  ]) {
    await page.getByTestId('train-settings').getByLabel(label, { exact: true }).fill(value);
  }
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await page.getByRole('button', { name: /Compare/ }).click();
  await page.getByText('Decoding settings').click();
  await page.getByLabel('Max new tokens').fill('3');
  await page.getByLabel('Prompt', { exact: true }).fill('Hello');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);
  await audit('after a run');
  expect(problems).toEqual([]);
});
