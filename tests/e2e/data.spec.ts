import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { tempDir } from '../helpers/model-folder';
import { loadDemoModel } from '../helpers/studio';

let dir: string;

test.beforeAll(async () => {
  dir = await tempDir();
  const chat = (user: string, assistant: string) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: user },
        { role: 'assistant', content: assistant },
      ],
    });
  await writeFile(
    join(dir, 'chat.jsonl'),
    [
      chat('What is the capital of France?', 'Paris.'),
      '{"messages": [ broken',
      JSON.stringify({ messages: [{ role: 'oracle', content: 'x' }] }),
      chat('Name a colour.', 'Blue.'),
    ].join('\n'),
  );
  await writeFile(join(dir, 'qa.csv'), 'q,a\nWhat?,That.\nWho?,Them.\n');
  await writeFile(join(dir, 'latin1.jsonl'), Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]));
});

test('a chat dataset is checked record by record and previewed as the model reads it', async ({ page }) => {
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(join(dir, 'chat.jsonl'));
  await expect(page.getByTestId('dataset-counts')).toHaveText('2 usable, 2 skipped');
  await page.getByText('The skipped records').click();
  const issues = page.getByTestId('dataset-issues');
  await expect(issues).toContainText('chat.jsonl:2: malformed JSON');
  await expect(issues).toContainText('chat.jsonl:3: unknown role "oracle"');
  await expect(page.getByTestId('format-choice').getByRole('combobox').first()).toHaveValue('messages');

  const summary = page.getByTestId('token-summary');
  await expect(summary).toContainText('hone-tiny: 2 records to train on, 0 held out');
  const first = page.getByTestId('record-preview').first();
  await expect(first).toContainText('<|im_start|>user\nWhat is the capital of France?');
  await expect(first.locator('mark[data-loss]')).toHaveText(['Paris.<|im_end|>\n']);
  await expect(page.getByTestId('length-histogram')).toBeVisible();

  // Prompts can carry loss too, and the split follows its setting.
  await page.getByLabel('Train on the prompts too').check();
  await expect(first.locator('mark[data-loss]').first()).toContainText('<|im_start|>user');
  const validation = page.getByLabel('Validation (fraction or count)');
  await validation.fill('1');
  await validation.blur();
  await expect(summary).toContainText('1 record to train on, 1 held out');
  await page.screenshot({ path: 'test-results/data-step.png', fullPage: true });

  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download the error list (CSV)' }).click();
  const csv = await (await download).createReadStream();
  let text = '';
  for await (const chunk of csv) text += chunk;
  expect(text.split('\n')[0]).toBe('file,line,reason');
  expect(text).toContain('"chat.jsonl",3,"unknown role');
});

test('columns with unusual names are mapped by hand', async ({ page }) => {
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(join(dir, 'qa.csv'));
  await expect(page.getByRole('alert')).toContainText(
    'qa.csv: not a dataset Hone recognises: its records have the fields q, a',
  );
  const choice = page.getByTestId('format-choice');
  await choice.getByLabel('Shape of the records').selectOption('prompt_completion');
  await choice.getByRole('combobox', { name: 'prompt', exact: true }).selectOption('q');
  await choice.getByRole('combobox', { name: 'completion', exact: true }).selectOption('a');
  await choice.getByRole('button', { name: 'Read again as this' }).click();
  await expect(page.getByTestId('dataset-counts')).toHaveText('2 usable, 0 skipped');
  await expect(page.getByTestId('record-preview').first().locator('mark[data-loss]')).toHaveText(['That.<|im_end|>\n']);

  // Another file starts from its own detection, not the last file's choice; a failed file shows its own choice.
  await page.getByLabel('choose files').setInputFiles(join(dir, 'chat.jsonl'));
  await expect(page.getByTestId('dataset-counts')).toHaveText('2 usable, 2 skipped');
  await expect(choice.getByLabel('Shape of the records')).toHaveValue('messages');
  await page.getByLabel('choose files').setInputFiles(join(dir, 'qa.csv'));
  await expect(page.getByRole('alert')).toContainText('qa.csv: not a dataset Hone recognises');
  await expect(choice.getByLabel('Shape of the records')).not.toHaveValue('messages');
  await expect(page.getByTestId('dataset-counts')).toHaveCount(0);
});

test('several files dropped at once are read as one dataset', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: /Data/ }).click();
  const files = await Promise.all(
    ['chat.jsonl', 'latin1.jsonl'].map(async (name) => ({ name, bytes: [...(await readFile(join(dir, name)))] })),
  );
  const transfer = await page.evaluateHandle((list) => {
    const data = new DataTransfer();
    for (const { name, bytes } of list) data.items.add(new File([new Uint8Array(bytes)], name));
    return data;
  }, files);
  await page.getByTestId('dataset-drop').dispatchEvent('drop', { dataTransfer: transfer });
  await expect(page.getByTestId('dataset-counts')).toHaveText('2 usable, 3 skipped');
  await expect(page.getByTestId('dataset-report')).toContainText('latin1.jsonl: not UTF-8 text');
  await expect(page.getByTestId('token-report')).toContainText('Load a model in the Model step');
});

test('a file that is not UTF-8 gets a clear answer', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: /Data/ }).click();
  await page.getByLabel('choose files').setInputFiles(join(dir, 'latin1.jsonl'));
  await expect(page.getByRole('alert')).toContainText('latin1.jsonl: not UTF-8 text (an invalid byte on line 1)');
});

test('an empty file says so, with no shape to read it as', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('button', { name: /Data/ }).click();
  await page
    .getByLabel('choose files')
    .setInputFiles({ name: 'empty.csv', mimeType: 'text/csv', buffer: Buffer.alloc(0) });
  await expect(page.getByRole('alert')).toHaveText('empty.csv: the file is empty');
  await expect(page.getByTestId('format-choice')).toHaveCount(0);
});
