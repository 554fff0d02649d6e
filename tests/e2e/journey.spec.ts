import { readFile } from 'node:fs/promises';
import { expect, type Page, test } from '@playwright/test';
import { unzipSync } from 'fflate';

/** A screenshot of the step, kept with the test's artifacts. */
async function shot(page: Page, name: string) {
  await page.screenshot({ path: `test-results/journey-${name}.png`, fullPage: true });
}

test('a first-time user goes from the demo model and a dropped dataset to a trained, compared, exported adapter', async ({
  page,
}) => {
  // Model: the offline demo model, no Hub needed.
  await page.goto('/');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
  await shot(page, '1-model');

  // Data: the example instructions, dropped onto the page as a file.
  await page.getByRole('button', { name: /Data/ }).click();
  const bytes = [...(await readFile('public/examples/instructions.jsonl'))];
  const transfer = await page.evaluateHandle((content) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(content)], 'instructions.jsonl'));
    return data;
  }, bytes);
  await page.getByTestId('dataset-drop').dispatchEvent('drop', { dataTransfer: transfer });
  await expect(page.getByTestId('dataset-counts')).toHaveText('400 usable, 0 skipped');
  await expect(page.getByTestId('token-report')).toContainText('carry loss');
  await shot(page, '2-data');

  // Train: the method follows the data; a short run.
  await page.getByRole('button', { name: /Train/ }).click();
  const settings = page.getByTestId('train-settings');
  await expect(settings.getByLabel('Method')).toHaveValue('sft');
  for (const [label, value] of [
    ['LoRA rank', '4'],
    ['Max steps (empty: by epochs)', '3'],
    ['Sequence length', '64'],
  ]) {
    const field = settings.getByLabel(label, { exact: true });
    await field.fill(value);
    await field.blur();
  }
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await shot(page, '3-train');

  // Compare: a held-out prompt, answered by the base and the tuned model side by side.
  await page.getByRole('button', { name: /Compare/ }).click();
  await page.getByText('Decoding settings').click();
  const maxNew = page.getByLabel('Max new tokens');
  await maxNew.fill('6');
  await maxNew.blur();
  await page.getByLabel('Or a held-out prompt from the validation split').selectOption({ index: 1 });
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByTestId('conversation-base')).toContainText(/tokens\/s/);
  await expect(page.getByTestId('conversation-tuned')).toContainText(/tokens\/s/);
  await shot(page, '4-compare');

  // Export: the adapter, downloaded.
  await page.getByRole('button', { name: /Export/ }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the adapter (.zip)' }).click(),
  ]);
  const files = unzipSync(new Uint8Array(await readFile(await download.path())));
  expect(Object.keys(files).sort()).toEqual(
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl'].map(
      (f) => `hone-tiny-sft-step3/${f}`,
    ),
  );
  await shot(page, '5-export');
});

test('an example dataset loads with one click', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: /Data/ }).click();
  await page
    .getByTestId('example-datasets')
    .getByRole('button', { name: /^Preferences/ })
    .click();
  await expect(page.getByTestId('dataset-counts')).toHaveText('300 usable, 0 skipped');
  await expect(page.getByTestId('dataset-report')).toContainText('preference');
});
