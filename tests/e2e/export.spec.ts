import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { unzipSync } from 'fflate';
import { parseSafetensors } from '../../core/safetensors';
import { capitalsJsonl } from '../helpers/datasets';
import { tempDir } from '../helpers/model-folder';
import { loadDemoModel } from '../helpers/studio';

test('the trained adapter downloads (PEFT folder, card, metrics; merged; a TRL job), imports, and trains on', async ({
  page,
}) => {
  const dir = await tempDir();
  const chat = join(dir, 'capitals.jsonl');
  await writeFile(
    chat,
    capitalsJsonl([
      ['Capital of France?', 'Paris.'],
      ['Capital of Spain?', 'Madrid.'],
      ['Capital of Peru?', 'Lima.'],
    ]),
  );
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(chat);
  await page.getByRole('button', { name: /Train/ }).click();
  const set = async (label: string, value: string) => {
    const field = page.getByTestId('train-settings').getByLabel(label, { exact: true });
    await field.fill(value);
    await field.blur();
  };
  await set('LoRA rank', '4');
  await set('Max steps (empty: by epochs)', '2');
  await set('Checkpoint every (steps)', '1');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  const trainedLoss = lossAt(await page.getByTestId('run-progress').textContent());

  await page.getByRole('button', { name: /Export/ }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the adapter (.zip)' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('hone-tiny-sft-step2.zip');
  const saved = join(dir, 'adapter.zip');
  await download.saveAs(saved);
  const files = unzipSync(new Uint8Array(await readFile(saved)));
  const folder = 'hone-tiny-sft-step2';
  expect(Object.keys(files).sort()).toEqual(
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'metrics.jsonl'].map((f) => `${folder}/${f}`),
  );
  const config = JSON.parse(new TextDecoder().decode(files[`${folder}/adapter_config.json`]));
  expect(config).toMatchObject({
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: 4,
    base_model_name_or_path: 'hone-tiny',
  });
  const tensors = parseSafetensors(files[`${folder}/adapter_model.safetensors`], 'adapter_model.safetensors');
  expect(tensors.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([
    4, 128,
  ]);
  const card = new TextDecoder().decode(files[`${folder}/README.md`]);
  expect(card).toContain('capitals.jsonl: messages data');
  const metrics = new TextDecoder().decode(files[`${folder}/metrics.jsonl`]).trim().split('\n');
  expect(metrics.map((l) => JSON.parse(l)).filter((m) => m.type === 'train')).toHaveLength(2);

  // The downloaded zip imports as it is, for comparing.
  await page.getByRole('button', { name: /Compare/ }).click();
  await page.getByLabel('import a zipped PEFT adapter').setInputFiles(saved);
  await expect(page.getByTestId('adapter-choice')).toContainText('Imported: adapter.zip (rank 4, 28 modules)');
  await page.getByRole('button', { name: /Export/ }).click();

  // The same adapter folded into the weights: a model folder that needs no PEFT.
  const [mergedDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the tuned model (.zip)' }).click(),
  ]);
  expect(mergedDownload.suggestedFilename()).toBe('hone-tiny-sft-step2-merged.zip');
  const mergedPath = join(dir, 'merged.zip');
  await mergedDownload.saveAs(mergedPath);
  const merged = unzipSync(new Uint8Array(await readFile(mergedPath)));
  const mergedFolder = 'hone-tiny-sft-step2-merged';
  expect(Object.keys(merged).sort()).toEqual(
    ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map(
      (f) => `${mergedFolder}/${f}`,
    ),
  );
  const weights = parseSafetensors(merged[`${mergedFolder}/model.safetensors`], 'model.safetensors');
  const base = parseSafetensors(new Uint8Array(await readFile('public/models/hone-tiny/model.safetensors')), 'base');
  const key = 'model.layers.0.self_attn.q_proj.weight';
  expect(weights.tensors.size).toBe(base.tensors.size);
  expect(weights.readFloat32(key)).not.toEqual(base.readFloat32(key));
  expect(weights.readFloat32('model.norm.weight')).toEqual(base.readFloat32('model.norm.weight'));

  // The same fine-tune as a job for GPU servers: the data as Hone split it, and a TRL script.
  const [jobDownload] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the job for TRL (.zip)' }).click(),
  ]);
  expect(jobDownload.suggestedFilename()).toBe('hone-tiny-sft-job.zip');
  const jobPath = join(dir, 'job.zip');
  await jobDownload.saveAs(jobPath);
  const job = unzipSync(new Uint8Array(await readFile(jobPath)));
  // hone-tiny is not on the Hub: its files travel with the job, and the script loads them from there.
  expect(Object.keys(job).sort()).toEqual([
    'hone-tiny-sft-job/base-model/config.json',
    'hone-tiny-sft-job/base-model/generation_config.json',
    'hone-tiny-sft-job/base-model/model.safetensors',
    'hone-tiny-sft-job/base-model/tokenizer.json',
    'hone-tiny-sft-job/base-model/tokenizer_config.json',
    'hone-tiny-sft-job/train.jsonl',
    'hone-tiny-sft-job/train.py',
  ]);
  expect(job['hone-tiny-sft-job/base-model/model.safetensors']).toEqual(
    new Uint8Array(await readFile('public/models/hone-tiny/model.safetensors')),
  );
  const script = new TextDecoder().decode(job['hone-tiny-sft-job/train.py']);
  expect(script).toContain('    model="./base-model",');
  expect(script).toContain('trainer = SFTTrainer(');
  expect(script).toContain('    r=4,');
  expect(script).toContain('    max_steps=2,');
  const records = new TextDecoder().decode(job['hone-tiny-sft-job/train.jsonl']).trim().split('\n');
  expect(records.map((line) => JSON.parse(line).completion[0].content).sort()).toEqual([
    'Answer: Lima.',
    'Answer: Madrid.',
    'Answer: Paris.',
  ]);

  // A kept checkpoint exports too: the run at step 1.
  await page.getByLabel('Checkpoint step').selectOption('1');
  const [first] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the adapter (.zip)' }).click(),
  ]);
  expect(first.suggestedFilename()).toBe('hone-tiny-sft-step1.zip');
  await expect(page.getByTestId('export-result')).toContainText(
    'hone-tiny-sft-step1.zip: adapter_config.json, adapter_model.safetensors, README.md, metrics.jsonl',
  );

  // The exported adapter goes on training, in its own shape, from where it was: its first loss is below the one
  // the first run's last step had (a fresh adapter starts far above it).
  await page.getByRole('button', { name: /Train/ }).click();
  await set('LoRA rank', '16');
  await page.getByLabel('continue a zipped adapter').setInputFiles(saved);
  await expect(page.getByTestId('start-from')).toContainText('The adapter adapter.zip, continued in its shape');
  await expect(page.getByTestId('train-settings').getByLabel('LoRA rank', { exact: true })).toHaveValue('4');
  await set('Max steps (empty: by epochs)', '1');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  expect(lossAt(await page.getByTestId('run-progress').textContent())).toBeLessThan(trainedLoss);
});

function lossAt(progress: string | null): number {
  return Number(progress?.match(/loss (-?[\d.]+)/)?.[1]);
}

test('a run that trained every weight downloads as the model itself', async ({ page }) => {
  const dir = await tempDir();
  const chat = join(dir, 'capitals.jsonl');
  await writeFile(chat, capitalsJsonl([['Capital of France?', 'Paris.']]));
  await loadDemoModel(page, /Data/);
  await page.getByLabel('choose files').setInputFiles(chat);
  await page.getByRole('button', { name: /Train/ }).click();
  await page.getByTestId('train-settings').getByLabel('Train every weight (tiny models only)').check();
  const steps = page.getByTestId('train-settings').getByLabel('Max steps (empty: by epochs)', { exact: true });
  await steps.fill('1');
  await steps.blur();
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await page.getByRole('button', { name: /Export/ }).click();
  await page.getByRole('button', { name: 'Download the adapter (.zip)' }).click();
  await expect(page.getByRole('alert')).toContainText('This run trains every weight: it has no adapter');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download the tuned model (.zip)' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('hone-tiny-sft-step1.zip');
  const path = join(dir, 'model.zip');
  await download.saveAs(path);
  const files = unzipSync(new Uint8Array(await readFile(path)));
  const weights = parseSafetensors(files['hone-tiny-sft-step1/model.safetensors'], 'model.safetensors');
  const base = parseSafetensors(new Uint8Array(await readFile('public/models/hone-tiny/model.safetensors')), 'base');
  expect(new Set([...weights.tensors.values()].map((t) => t.dtype))).toEqual(new Set(['F32']));
  const key = 'model.embed_tokens.weight';
  expect(weights.readFloat32(key)).not.toEqual(base.readFloat32(key));
  expect(Object.keys(files)).toContain('hone-tiny-sft-step1/config.json');

  // Compare switches weights: the model as loaded beside the run's trained copy.
  await page.getByRole('button', { name: /Compare/ }).click();
  await expect(page.getByTestId('adapter-choice')).toContainText('This run’s weights');
  const baseSide = page.getByTestId('conversation-base');
  const tunedSide = page.getByTestId('conversation-tuned');
  await expect(baseSide.getByRole('heading')).toHaveText('Base model (as loaded)');
  await expect(tunedSide.getByRole('heading')).toHaveText('Tuned model (the run’s weights)');
  await page.getByLabel('Prompt', { exact: true }).fill('Capital of France?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(baseSide).toContainText(/tokens\/s/);
  await expect(tunedSide).toContainText(/tokens\/s/);
  await page.screenshot({ path: 'test-results/compare-full-run.png', fullPage: true });
});
