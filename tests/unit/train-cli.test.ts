import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { randomLora } from '../../workers/engine/reference/random-model';
import { capitalsJsonl, ordersJsonl } from '../helpers/datasets';
import { hone, honeInterrupted, runMetrics } from '../helpers/hone-cli';
import { tempDir, writeAdapterFolder } from '../helpers/model-folder';
import { meanTokenWeightOnnx } from '../helpers/onnx-model';

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

/** Float32 values in an adapter's flat vector: A [r, in] and B [out, r] of every module. */
function adapterValues(adapter: Awaited<ReturnType<typeof loadAdapter>>): number {
  return adapter.modules.reduce((n, m) => n + m.shapeA[0] * m.shapeA[1] + m.shapeB[0] * m.shapeB[1], 0);
}

// Each test runs hone train in new processes (three in a row for resuming), each compiling its kernels: over a
// minute on SwiftShader, the adapter npm test uses.
describe('hone train', { timeout: 180_000 }, () => {
  it('fine-tunes hone-tiny on a chat dataset, lowering the loss, and writes a PEFT adapter that loads', async () => {
    const out = join(dir, 'sft');
    const args = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', '--out', out, ...small];
    const { code, stderr } = await hone('train', ...args, '--max-steps', '6', '--lr', '0.01', '--schedule', 'constant');
    expect(stderr).toContain('messages data: 4 records (0 skipped), 4 training and 0 validation sequences');
    expect(code).toBe(0);
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(steps[5].loss).toBeLessThan(0.9 * steps[0].loss);
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const adapter = await loadAdapter(folderReader(out), out, model.config);
    expect(adapter.config).toMatchObject({ r: 4, loraAlpha: 8, baseModelNameOrPath: 'hone-tiny' });
    const card = await readFile(join(out, 'README.md'), 'utf8');
    // hone-tiny is not on the Hub: the card loads it from its folder and names no Hub base_model.
    expect(card).not.toContain('base_model:');
    expect(card).toContain('`hone-tiny` is not on the Hugging Face Hub: load it from its folder');
    expect(card).toContain('AutoModelForCausalLM.from_pretrained("path/to/hone-tiny")');
    expect(card).toContain('chat.jsonl: messages data, 4 training and 0 validation sequences.');
    expect(card).toMatch(/After 6 steps: training loss \d\.\d{4}\./);
    expect(adapter.modules).toHaveLength(model.config.numLayers * 7);
    // However short, the run ends with a checkpoint (the studio's run layout) it can be continued from.
    const saved = JSON.parse(await readFile(join(out, 'checkpoint', 'trainer.json'), 'utf8'));
    expect(saved.step).toBe(6);
    const run = JSON.parse(await readFile(join(out, 'checkpoint', 'run.json'), 'utf8'));
    expect(run).toMatchObject({ model: 'hone-tiny', files: ['chat.jsonl'], settings: { maxSteps: 6, loraR: 4 } });
    expect(await readFile(join(out, 'checkpoint', 'data-0'), 'utf8')).toBe(await readFile(chat, 'utf8'));
    expect(await readFile(join(out, 'checkpoint', 'adapter-6'))).toHaveLength(4 * adapterValues(adapter));
  });

  it('trains over a 4-bit base, which the run records and --resume keeps', async () => {
    const out = join(dir, 'q4');
    const args = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', '--out', out, ...small];
    const bad = await hone('train', ...args, '--base', 'q5');
    expect(bad.stderr).toContain("--base must be one of f16, q8, q4, nf4, not 'q5'");
    const { code } = await hone('train', ...args, '--base', 'q4', '--max-steps', '4', '--lr', '0.01');
    expect(code).toBe(0);
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(steps[3].loss).toBeLessThan(0.9 * steps[0].loss);
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const adapter = await loadAdapter(folderReader(out), out, model.config);
    expect(adapter.modules).toHaveLength(model.config.numLayers * 7);
    const run = JSON.parse(await readFile(join(out, 'checkpoint', 'run.json'), 'utf8'));
    expect(run).toMatchObject({ model: 'hone-tiny', base: 'q4' });
    const other = await hone('train', '--out', out, '--resume', '--max-steps', '6', '--base', 'f16');
    expect(other.stderr).toContain(`--resume: the run in ${out} trains over a q4 base, not f16`);
    // Merging says what the adapter folds into.
    const merged = await hone('merge', '--model', 'hone-tiny', '--adapter', out, '--out', join(dir, 'q4-merged'));
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stderr).toContain('over a 4-bit copy of the base; the adapter folds into the original weights');
  });

  it('resumes a paused or finished run to the adapter an uninterrupted run writes, recomputing or not', async () => {
    const common = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', ...small, '--schedule', 'constant'];
    const whole = join(dir, 'whole');
    expect((await hone('train', ...common, '--out', whole, '--max-steps', '4')).code).toBe(0);
    const bytes = (folder: string) => readFile(join(folder, 'adapter_model.safetensors'));
    const trainSteps = async (folder: string) =>
      (await runMetrics(folder)).filter((m) => m.type === 'train').map((m) => m.step);

    // Finished at step 2, then trained on to step 4 with only its folder named (and recomputing activations).
    const longer = join(dir, 'longer');
    expect((await hone('train', ...common, '--out', longer, '--max-steps', '2')).code).toBe(0);
    const again = await hone('train', '--out', longer, '--resume');
    expect(again.stderr).toContain(`the run in ${longer} has ended; give --max-steps or --epochs to train it longer`);
    const changed = await hone('train', '--out', longer, '--resume', '--lr', '0.5', '--max-steps', '4');
    expect(changed.stderr).toContain('lr 0.5 (the run has 0.01) would change it');
    const second = await hone('train', '--out', longer, '--resume', '--max-steps', '4', '--recompute');
    expect(second.stderr).toContain('resuming at step 2 of 4');
    expect(second.code).toBe(0);
    expect(Buffer.compare(await bytes(whole), await bytes(longer))).toBe(0);
    expect(await trainSteps(longer)).toEqual([1, 2, 3, 4]);

    // Ctrl-C pauses after the step in flight, checkpointed; --resume continues it.
    const paused = join(dir, 'paused');
    const interrupted = await honeInterrupted(/step 1\/4/, 'train', ...common, '--out', paused, '--max-steps', '4');
    expect(interrupted.code).toBe(130);
    const stoppedAt = Number(/stopped at step (\d)/.exec(interrupted.stderr)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(1);
    expect(stoppedAt).toBeLessThan(4);
    expect(interrupted.stderr).toContain(`continue with: hone train --out ${paused} --resume`);
    const resumed = await hone('train', '--out', paused, '--resume');
    expect(resumed.stderr).toContain(`resuming at step ${stoppedAt} of 4`);
    expect(resumed.code).toBe(0);
    expect(Buffer.compare(await bytes(whole), await bytes(paused))).toBe(0);
    expect(await trainSteps(paused)).toEqual([1, 2, 3, 4]);
  });

  it('continues training an adapter it is given, in its shape, warming up so a converged one stays so', async () => {
    const run = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft'];
    const quick = ['--batch-size', '4', '--seq-len', '32', '--validation', '0', '--eval-every', '0'];
    const first = join(dir, 'first');
    const shape = ['--lora-r', '4', '--lora-alpha', '8', '--schedule', 'constant'];
    expect((await hone('train', ...run, ...quick, ...shape, '--out', first, '--max-steps', '30')).code).toBe(0);
    const firstSteps = (await runMetrics(first)).filter((m) => m.type === 'train');
    // The next run takes the adapter's rank and alpha (no flags for them) and starts where the first ended; its
    // optimizer starts fresh, so it warms up (the studio's defaults would give 0 warm-up steps of 4).
    const next = join(dir, 'next');
    const { code, stderr } = await hone(
      'train',
      ...run,
      ...quick,
      '--out',
      next,
      '--max-steps',
      '4',
      '--adapter',
      first,
    );
    expect(code).toBe(0);
    expect(stderr).toContain('4 steps, 3 of them warming up');
    const nextSteps = (await runMetrics(next)).filter((m) => m.type === 'train');
    const learned = firstSteps[0].loss - firstSteps[29].loss;
    expect(learned).toBeGreaterThan(0);
    expect(Math.abs(nextSteps[0].loss - firstSteps[29].loss)).toBeLessThan(0.1 * learned);
    for (const step of nextSteps.slice(1)) expect(step.loss).toBeLessThan(1.1 * nextSteps[0].loss);
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    expect((await loadAdapter(folderReader(next), next, model.config)).config).toMatchObject({ r: 4, loraAlpha: 8 });
    const other = await hone(
      'train',
      ...run,
      ...quick,
      '--out',
      join(dir, 'other'),
      '--adapter',
      first,
      '--lora-r',
      '8',
    );
    expect(other.stderr).toContain(`--lora-r asks for 8, but the adapter ${first} has 4: leave it out to continue it`);
  });

  it('trains every weight of a tiny model and writes the model itself, float32, with its config and tokenizer', async () => {
    const out = join(dir, 'full');
    const args = ['--model', 'hone-tiny', '--data', chat, '--method', 'sft', '--out', out, '--full'];
    const { code } = await hone('train', ...args, '--max-steps', '2', '--batch-size', '4', '--seq-len', '32');
    expect(code).toBe(0);
    const trained = await loadCheckpoint(folderReader(out), out);
    const base = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    expect(trained.config).toEqual(base.config);
    expect(new Set([...trained.tensors.values()].map((t) => t.dtype))).toEqual(new Set(['F32']));
    const key = 'model.layers.1.mlp.down_proj.weight';
    expect(await trained.readFloat32(key)).not.toEqual(await base.readFloat32(key));
    expect(await readFile(join(out, 'tokenizer.json'), 'utf8')).toBe(
      await readFile('public/models/hone-tiny/tokenizer.json', 'utf8'),
    );
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
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
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
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
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
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(steps.at(-1).loss).toBeLessThan(steps[0].loss);
    const evals = (await runMetrics(out)).filter((m) => m.type === 'eval');
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

  it('optimizes a policy with GRPO against a reward rule, a trained reward model or an ONNX model', async () => {
    const prompts = join(dir, 'rl.jsonl');
    await writeFile(
      prompts,
      ['Raise the sails.', 'Mend the nets.', 'Hoist the flag.'].map((p) => JSON.stringify({ prompt: p })).join('\n'),
    );
    const rule = join(dir, 'short.js');
    await writeFile(rule, '(prompt, completion) => -completion.length');
    const out = join(dir, 'grpo');
    const grpo = ['train', '--model', 'hone-tiny', '--data', prompts, '--method', 'grpo', '--out', out, ...small];
    // Software adapters decode slowly, token by token: one prompt, two short completions, one step.
    const tiny = ['--batch-size', '1', '--group-size', '2', '--max-completion', '2', '--max-steps', '1'];
    const { code, stderr } = await hone(...grpo, ...tiny, '--reward-js', rule);
    expect(stderr).toContain('rl_prompts data: 3 records (0 skipped), 3 training and 0 validation prompts');
    expect(code).toBe(0);
    const steps = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(steps).toHaveLength(1);
    expect(steps[0].completionLength).toBeGreaterThan(0);
    expect(steps[0].completionLength).toBeLessThanOrEqual(2);
    // The adapter starts as the base model, and the rule pays less for longer completions.
    expect(steps[0].kl).toBe(0);
    expect(steps[0].reward).toBeLessThan(0);
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    expect((await loadAdapter(folderReader(out), out, model.config)).config.taskType).toBe('CAUSAL_LM');

    // The same prompts, rewarded by a reward model trained a step on preference pairs.
    const prefs = join(dir, 'rm-for-grpo.jsonl');
    await writeFile(
      prefs,
      ordersJsonl(['Raise the sails', 'Mend the nets'], () => 'No.'),
    );
    const rm = join(dir, 'rm-for-grpo');
    const rmArgs = ['--data', prefs, '--method', 'rm', '--out', rm, '--max-steps', '1'];
    expect((await hone('train', '--model', 'hone-tiny', ...rmArgs, ...small)).code).toBe(0);
    const withModel = await hone(...grpo, ...tiny, '--reward-model', rm);
    expect(withModel.code).toBe(0);
    const rewarded = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(rewarded).toHaveLength(1);
    expect(rewarded[0].reward).not.toBe(steps[0].reward);

    // And by an ONNX model (every token weighs 1 here, so every completion scores exactly 1).
    const onnx = join(dir, 'ones.onnx');
    await writeFile(onnx, meanTokenWeightOnnx(new Float32Array(4096).fill(1)));
    expect((await hone(...grpo, ...tiny, '--reward-onnx', onnx)).code).toBe(0);
    const scored = (await runMetrics(out)).filter((m) => m.type === 'train');
    expect(scored[0].reward).toBeCloseTo(1, 6);
    expect(scored[0].rewardStd).toBe(0);
  }, 120_000);

  it('refuses a policy optimization run without exactly one usable reward, naming why', async () => {
    const prompts = join(dir, 'rl-bad.jsonl');
    await writeFile(prompts, `${JSON.stringify({ prompt: 'Raise the sails.' })}\n`);
    const grpo = ['train', '--model', 'hone-tiny', '--data', prompts, '--method', 'grpo', '--out', join(dir, 'x')];
    expect((await hone(...grpo)).stderr).toContain('policy optimization needs one reward: --reward-model DIR');
    const two = await hone(...grpo, '--reward-js', 'a.js', '--reward-model', 'b');
    expect(two.stderr).toContain('not --reward-model and --reward-js');
    expect((await hone(...grpo, '--reward-js', join(dir, 'none.js'))).stderr).toContain('none.js: no such file');
    expect((await hone(...grpo, '--reward-onnx', join(dir, 'none.onnx'))).stderr).toContain('none.onnx: no such file');
    const notFunction = join(dir, 'number.js');
    await writeFile(notFunction, '42');
    expect((await hone(...grpo, '--reward-js', notFunction)).stderr).toContain(
      'the reward rule number.js: it must evaluate to a function',
    );
    const model = await loadCheckpoint(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const causal = await writeAdapterFolder(join(dir, 'causal'), randomLora(model.config, ['q_proj'], 2, 4, false, 1), [
      'q_proj',
    ]);
    expect((await hone(...grpo, '--reward-model', causal)).stderr).toContain(
      'is not a reward model\'s adapter: one has task_type "SEQ_CLS"',
    );
    const misplaced = await hone(
      'train',
      '--model',
      'hone-tiny',
      '--data',
      chat,
      '--method',
      'sft',
      '--out',
      join(dir, 'y'),
      '--reward-js',
      'r.js',
    );
    expect(misplaced.stderr).toContain('--reward-js gives policy optimization its reward; it needs --method grpo');
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
    const rule = join(dir, 'rule.js');
    await writeFile(rule, '() => 1');
    const rl = await hone('train', ...base, '--method', 'grpo', '--reward-js', rule);
    expect(rl.code).toBe(2);
    expect(rl.stderr).toContain('Policy optimization (RL prompts and a reward) trains on rl_prompts data');
  });
});
