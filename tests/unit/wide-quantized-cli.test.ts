/**
 * LoRA over a 4-bit base at a real model's width, through the CLI: two of Llama 3.2 1B's layers (hidden 2048,
 * intermediate 8192, grouped-query attention) in a BF16 checkpoint, quantized at load, trained on one conversation
 * until it is learnt, then asked it, decoding over the same 4-bit weights.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { oneConversationJsonl } from '../helpers/datasets';
import { hone, trainLosses } from '../helpers/hone-cli';
import { llama1bLayersConfig, tempDir, writeRandomBf16Folder } from '../helpers/model-folder';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

let dir: string;
let model: string;
let data: string;
const question = 'Code word for cedar?';
const answer = 'falcon';

beforeAll(async () => {
  dir = await tempDir('hone-wide-');
  // Untied: a random tied head would score each token's own embedding ~600 above the rest.
  model = await writeRandomBf16Folder(join(dir, 'model'), { ...llama1bLayersConfig(), tieWordEmbeddings: false }, 11);
  for (const [name, text] of Object.entries(tinyTokenizerFiles())) await writeFile(join(model, name), text);
  data = join(dir, 'one.jsonl');
  await writeFile(data, oneConversationJsonl(question, answer, 4));
}, 120_000);

// Six training steps and a decode at a width a software adapter runs at about 15 s a step: minutes beside other tests.
describe('a 4-bit base at Llama 3.2 1B’s width in the CLI', { timeout: 600_000 }, () => {
  it('trains a conversation in and answers it, decoding over the 4-bit weights', async () => {
    const out = join(dir, 'run');
    const settings = ['--batch-size', '1', '--seq-len', '64', '--validation', '0', '--max-steps', '6'];
    const schedule = ['--lr', '0.003', '--schedule', 'cosine', '--warmup', '0'];
    const trained = await hone(
      'train',
      ...['--model', model, '--data', data, '--method', 'sft', '--base', 'q4', '--out', out],
      ...settings,
      ...schedule,
    );
    expect(trained.code, trained.stderr).toBe(0);
    const losses = await trainLosses(out);
    expect(losses).toHaveLength(6);
    expect(losses[5]).toBeLessThan(losses[0] / 4);
    const run = JSON.parse(await readFile(join(out, 'checkpoint', 'run.json'), 'utf8'));
    expect(run).toMatchObject({ base: 'q4' });

    const args = ['--prompt', question, '--temperature', '0', '--max-new-tokens', '16', '--json'];
    const tuned = await hone('generate', '--model', model, '--adapter', out, '--base', 'q4', ...args);
    expect(tuned.code, tuned.stderr).toBe(0);
    expect(JSON.parse(tuned.stdout).text).toContain(answer);
  });
});
