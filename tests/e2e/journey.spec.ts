import { readFile } from 'node:fs/promises';
import { expect, type Locator, type Page, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { capitalsJsonl } from '../helpers/datasets';

/** A screenshot of the step, kept with the test's artifacts. */
async function shot(page: Page, name: string) {
  await page.screenshot({ path: `test-results/journey-${name}.png`, fullPage: true });
}

/** Drops files onto a drop zone as a person would, through a DataTransfer drop event. */
async function dropFiles(zone: Locator, files: { name: string; text: string }[]) {
  const transfer = await zone.page().evaluateHandle((list) => {
    const data = new DataTransfer();
    for (const { name, text } of list) data.items.add(new File([text], name));
    return data;
  }, files);
  await zone.dispatchEvent('drop', { dataTransfer: transfer });
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
  const text = await readFile('public/examples/instructions.jsonl', 'utf8');
  await dropFiles(page.getByTestId('dataset-drop'), [{ name: 'instructions.jsonl', text }]);
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
  // Before starting: what it costs in memory, and in time once two steps are timed.
  await page.getByRole('button', { name: 'Estimate the time' }).click();
  await expect(page.getByTestId('time-estimate')).toContainText('3 steps of');
  await shot(page, '3-settings');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await shot(page, '4-train');

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
  await shot(page, '5-compare');

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
  await shot(page, '6-export');
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

test('a broken dataset: each bad line is named with what is wrong, and the good lines are kept', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: /Data/ }).click();
  const good = capitalsJsonl([
    ['Capital of France?', 'Paris.'],
    ['Capital of Spain?', 'Madrid.'],
  ]);
  const broken = `${good}{"messages": [{"role": "user", "content": "Capital of\n${good}{"messages": "Lima"}\n`;
  await dropFiles(page.getByTestId('dataset-drop'), [{ name: 'capitals.jsonl', text: broken }]);
  await expect(page.getByTestId('dataset-counts')).toHaveText('4 usable, 2 skipped');
  const report = page.getByTestId('dataset-report');
  await expect(report).toContainText('capitals.jsonl:3');
  await expect(report).toContainText('capitals.jsonl:6');
  await report.getByText('The skipped records').click();
  await expect(report.getByText('capitals.jsonl:3')).toBeVisible();
  await shot(page, 'error-dataset');
});

test('an unsupported model: the message names the field, the value and what is supported', async ({ page }) => {
  await page.goto('/');
  const config = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_layer: 2, n_embd: 8 };
  await dropFiles(page.getByRole('region', { name: 'Model folder on this computer' }), [
    { name: 'config.json', text: JSON.stringify(config) },
  ]);
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('model_type');
  await expect(alert).toContainText('gpt2');
  await expect(alert).toContainText(/supported: llama/);
  await expect(page.getByRole('button', { name: 'Load', exact: true })).toHaveCount(0);
  await shot(page, 'error-model');
});
