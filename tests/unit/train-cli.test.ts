import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { capitalsJsonl, ordersJsonl } from '../helpers/datasets';
import { hone } from '../helpers/hone-cli';
import { tempDir } from '../helpers/model-folder';

let dir: string;
let chat: string;

beforeAll(async () => {
  dir = await tempDir('hone-train-');
  chat = join(dir, 'chat.jsonl');
  await writeFile(
    chat,
    capitalsJsonl([
      ['Capital of France?', 'Paris.'],
      ['Capital of Spain?', 'Madrid.'],
      ['Capital of Italy?', 'Rome.'],
      ['Capital of Peru?', 'Lima.'],
    ]),
  );
});

const small = [
  '--lora-r',
  '4',
  '--lora-alpha',
  '8',
  '--batch-size',
  '4',
  '--seq-len',
  '32',
  '--validation',
  '0',
  '--eval-every',
  '0',
];

async function metrics(out: string) {
  const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  return lines.map((l) => JSON.parse(l));
}

describe('hone train', () => {
  it('fine-tunes hone-tiny on a chat dataset, lowering the loss, and writes a PEFT adapter that loads', async () => {
    const out = join(dir, 'sft');
    const args = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', '--out', out, ...small];
    const { code, stderr } = await hone('train', ...args, '--max-steps', '6', '--lr', '0.01', '--schedule', 'constant');
    expect(stderr).toContain('messages data: 4 records (0 skipped), 4 training and 0 validation sequences');
    expect(code).toBe(0);
    const steps = (await metrics(out)).filter((m) => m.type === 'train');
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(steps[5].loss).toBeLessThan(0.9 * steps[0].loss);
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const adapter = await loadAdapter(folderReader(out), out, model.config);
    expect(adapter.config).toMatchObject({ r: 4, loraAlpha: 8, baseModelNameOrPath: 'hone-tiny' });
    expect(adapter.modules).toHaveLength(model.config.numLayers * 7);
  });

  it('resumes from its checkpoint to the adapter an uninterrupted run writes', async () => {
    const common = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', ...small, '--schedule', 'constant'];
    const whole = join(dir, 'whole');
    expect((await hone('train', ...common, '--out', whole, '--max-steps', '4')).code).toBe(0);
    const parts = join(dir, 'parts');
    const first = await hone('train', ...common, '--out', parts, '--max-steps', '2', '--checkpoint-every', '2');
    expect(first.code).toBe(0);
    const second = await hone('train', ...common, '--out', parts, '--max-steps', '4', '--resume');
    expect(second.stderr).toContain('resuming at step 2 of 4');
    expect(second.code).toBe(0);
    const bytes = (folder: string) => readFile(join(folder, 'adapter_model.safetensors'));
    expect(Buffer.compare(await bytes(whole), await bytes(parts))).toBe(0);
    expect((await metrics(parts)).filter((m) => m.type === 'train').map((m) => m.step)).toEqual([1, 2, 3, 4]);
  });

  it('continues pretraining on raw text', async () => {
    const text = join(dir, 'book.txt');
    await writeFile(text, 'Call me Ishmael. Some years ago, never mind how long precisely, I went to sea. '.repeat(20));
    const out = join(dir, 'cpt');
    const { code } = await hone(
      'train',
      '--model',
      'hone-tiny',
      '--data',
      text,
      '--method',
      'cpt',
      '--out',
      out,
      ...small,
      '--max-steps',
      '5',
      '--lr',
      '0.01',
      '--schedule',
      'constant',
    );
    expect(code).toBe(0);
    const steps = (await metrics(out)).filter((m) => m.type === 'train');
    expect(steps.at(-1).loss).toBeLessThan(steps[0].loss);
  });

  it('optimizes preferences with DPO, starting from log 2 where the policy is its reference', async () => {
    const prefs = join(dir, 'prefs.jsonl');
    await writeFile(
      prefs,
      ordersJsonl(
        ['Raise the sails', 'Mend the nets', 'Clean the deck', 'Hoist the flag'],
        (task) => `I do not want to ${task.toLowerCase()}.`,
      ),
    );
    const out = join(dir, 'dpo');
    const dpo = ['train', '--model', 'hone-tiny', '--data', prefs, '--method', 'dpo', '--out', out];
    const { code, stderr } = await hone(...dpo, ...small, '--max-steps', '4', '--lr', '0.01', '--schedule', 'constant');
    expect(stderr).toContain('preference data: 4 records (0 skipped), 4 training and 0 validation pairs');
    expect(code).toBe(0);
    const steps = (await metrics(out)).filter((m) => m.type === 'train');
    expect(steps[0].loss).toBeCloseTo(Math.log(2), 4);
    expect(steps.at(-1).loss).toBeLessThan(0.8 * steps[0].loss);
    const full = await hone(...dpo, '--full');
    expect(full.stderr).toContain('DPO trains a LoRA adapter');
  });

  it('trains a reward model whose PEFT adapter (SEQ_CLS, with its score head) loads as a reward model only', async () => {
    const prefs = join(dir, 'rm-prefs.jsonl');
    const tasks = [
      'Raise the sails',
      'Mend the nets',
      'Clean the deck',
      'Hoist the flag',
      'Coil the rope',
      'Fix the mast',
    ];
    await writeFile(
      prefs,
      ordersJsonl(tasks, (task) => `I do not want to ${task.toLowerCase()}.`),
    );
    const out = join(dir, 'rm');
    const rm = ['train', '--model', 'hone-tiny', '--data', prefs, '--method', 'rm', '--out', out];
    const settings = [...small.slice(0, -4), '--validation', '2', '--max-steps', '8', '--schedule', 'constant'];
    const { code, stderr } = await hone(...rm, ...settings);
    expect(stderr).toContain('4 training and 2 validation pairs');
    expect(stderr).toMatch(/validation loss [\d.]+, [\d.]+% of held-out pairs ranked right/);
    expect(code).toBe(0);
    const steps = (await metrics(out)).filter((m) => m.type === 'train');
    expect(steps.at(-1).loss).toBeLessThan(steps[0].loss);
    const evals = (await metrics(out)).filter((m) => m.type === 'eval');
    expect(typeof evals.at(-1).validationAccuracy).toBe('number');
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const adapter = await loadAdapter(folderReader(out), out, model.config, 'SEQ_CLS');
    expect(adapter.config.taskType).toBe('SEQ_CLS');
    expect(adapter.scoreKey).toBe('base_model.model.score.weight');
    await expect(loadAdapter(folderReader(out), out, model.config)).rejects.toThrow(
      /adapter_config.json: task_type "SEQ_CLS" is a reward model's adapter/,
    );
    const full = await hone(...rm, '--full');
    expect(full.stderr).toContain('a reward model is saved as a PEFT adapter');
  });

  it('refuses bad settings before training, with every reason', async () => {
    const base = ['--model', 'hone-tiny', '--data', chat, '--out', join(dir, 'bad')];
    const bad = await hone('train', ...base, '--method', 'sft', '--lr=-1', '--lora-r', '0', '--seq-len', '100000');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('the learning rate must be above 0 and below 1, not -1');
    expect(bad.stderr).toContain('the LoRA rank must be a whole number of at least 1, not 0');
    expect(bad.stderr).toContain("past the model's max_position_embeddings");
    const format = await hone('train', ...base, '--method', 'cpt');
    expect(format.stderr).toContain('Continued pretraining (raw text) trains on text data; this dataset is messages');
    const word = await hone('train', ...base, '--method', 'sft', '--lr', 'fast');
    expect(word.stderr).toContain("--lr takes a number, not 'fast'");
    const later = await hone('train', ...base, '--method', 'grpo');
    expect(later.code).toBe(1);
    expect(later.stderr).toContain('--method grpo (Policy optimization (RL prompts and a reward)) is not built yet');
  });
});
