/**
 * Gemma 3 through the CLI as a person would use it: a random tiny Gemma 3 (local and global layers, a window its
 * conversations pass, the Gemma-shaped tokenizer with <start_of_turn> / <end_of_turn> and Gemma's chat template),
 * served by a local Hub-layout server, trained, chatted with (the end-of-turn token ends the answer), merged.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeWordsJsonl } from '../helpers/datasets';
import { writeGemmaFolder } from '../helpers/gemma-model';
import { hone, honeWithEnv, trainLosses } from '../helpers/hone-cli';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { tempDir } from '../helpers/model-folder';

let dir: string;
let hub: HubServer;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await tempDir('hone-gemma-');
  hub = await startHubServer();
  hub.files.set('org/gemma-tiny', (await writeGemmaFolder(join(dir, 'model'))).files);
  env = { HONE_HUB_URL: hub.url, HONE_CACHE_DIR: join(dir, 'cache') };
  await writeFile(join(dir, 'codes.jsonl'), codeWordsJsonl());
});
afterAll(() => hub.close());

/** Greedy ids and text of an answer to `prompt`, at most 20 tokens. */
async function answer(model: string, ...extra: string[]): Promise<{ ids: number[]; text: string }> {
  const args = ['--prompt', 'Code word for cedar?', '--temperature', '0', '--max-new-tokens', '20', '--json'];
  const result = await honeWithEnv(env, 'generate', '--model', model, ...extra, ...args);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

describe('a Gemma 3 model from the Hub in the CLI', () => {
  it('trains, answers through its chat template until <end_of_turn>, and merges into a model that answers alike', async () => {
    const run = join(dir, 'run');
    const settings = ['--max-steps', '30', '--validation', '0', '--batch-size', '6', '--seq-len', '64'];
    const schedule = ['--lr', '0.02', '--schedule', 'constant', '--warmup', '2'];
    const trained = await honeWithEnv(
      env,
      'train',
      ...['--model', 'hub:org/gemma-tiny', '--data', join(dir, 'codes.jsonl'), '--method', 'sft', '--out', run],
      ...settings,
      ...schedule,
    );
    expect(trained.code, trained.stderr).toBe(0);
    const losses = await trainLosses(run);
    expect(losses).toHaveLength(30);
    expect(Math.min(...losses.slice(-5))).toBeLessThan(losses[0] / 4);

    const tuned = await answer('hub:org/gemma-tiny', '--adapter', run);
    // An answer of a few tokens that stopped at the end of its turn, not at the length limit.
    expect(tuned.ids.length).toBeGreaterThan(0);
    expect(tuned.ids.length).toBeLessThan(20);
    expect(tuned.text).toMatch(/^\S+$/);

    const merged = join(dir, 'merged');
    const merge = await honeWithEnv(env, 'merge', '--model', 'hub:org/gemma-tiny', '--adapter', run, '--out', merged);
    expect(merge.code, merge.stderr).toBe(0);
    expect(await answer(merged)).toEqual(tuned);
    const gguf = await hone('export', '--model', merged, '--format', 'gguf', '--out', join(dir, 'model.gguf'));
    expect(gguf.code).toBe(1);
    expect(gguf.stderr).toMatch(
      /merged\/config\.json: layer_types makes layers \[1\] global; llama\.cpp runs Gemma 3 with every sixth layer global/,
    );
  }, 600_000);
});
