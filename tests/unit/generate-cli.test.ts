import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadTokenizer } from '../../core/tokenizer';
import { randomLora, randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { hone } from '../helpers/hone-cli';
import { tempDir, writeAdapterFolder, writeModelFolder } from '../helpers/model-folder';

let model: string;
let adapter: string;

beforeAll(async () => {
  const dir = await tempDir('hone-generate-');
  const config = tinyConfig();
  model = await writeModelFolder(join(dir, 'model'), config, randomWeights(config, 1));
  adapter = await writeAdapterFolder(join(dir, 'adapter'), randomLora(config, ['q_proj', 'v_proj'], 2, 4, false, 2), [
    'q_proj',
    'v_proj',
  ]);
});

const json = async (...args: string[]) => {
  const result = await hone('generate', ...args, '--json');
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
};

describe('hone generate', () => {
  it('continues token ids without a tokenizer: greedy is repeatable, and the adapter changes the answer', async () => {
    const args = ['--model', model, '--prompt-ids', '[3, 17, 5]', '--max-new-tokens', '12', '--temperature', '0'];
    const base = await json(...args);
    expect(Object.keys(base)).toEqual(['ids']);
    expect(base.ids).toHaveLength(12);
    expect(base.ids.every((id: number) => Number.isInteger(id) && id >= 0 && id < 37)).toBe(true);
    expect(await json(...args)).toEqual(base);
    // The adapter shifts the distribution: the same seed samples another answer.
    const sampled = [
      '--model',
      model,
      '--prompt-ids',
      '[3, 17, 5]',
      '--max-new-tokens',
      '16',
      '--temperature',
      '1',
      '--seed',
      '1',
    ];
    expect((await json(...sampled, '--adapter', adapter)).ids).not.toEqual((await json(...sampled)).ids);
  });

  it('samples the same tokens for the same seed', async () => {
    const args = [
      '--model',
      model,
      '--prompt-ids',
      '[1]',
      '--max-new-tokens',
      '16',
      '--temperature',
      '1.5',
      '--top-k',
      '0',
    ];
    const a = await json(...args, '--seed', '4');
    expect(await json(...args, '--seed', '4')).toEqual(a);
    expect((await json(...args, '--seed', '5')).ids).not.toEqual(a.ids);
  });

  it('answers a text prompt through the chat template and stops at the end of its turn', async () => {
    const result = await json(
      '--model',
      'hone-tiny',
      '--prompt',
      'Call me',
      '--raw',
      '--max-new-tokens',
      '8',
      '--temperature',
      '0',
    );
    const tokenizer = await loadTokenizer(folderReader('public/models/hone-tiny'), 'hone-tiny');
    expect(result.text).toBe(tokenizer.decode(result.ids, { skipSpecialTokens: true }));
    expect(result.ids.length).toBeLessThanOrEqual(8);
    expect(result.ids.some((id: number) => tokenizer.eosTokenIds.includes(id))).toBe(false);
  });

  it('says what is wrong with a bad request', async () => {
    const noTokenizer = await hone('generate', '--model', model, '--prompt', 'hi');
    expect(noTokenizer.code).toBe(1);
    expect(noTokenizer.stderr).toContain('no tokenizer.json');
    const ids = await hone('generate', '--model', model, '--prompt-ids', '[1, "a"]');
    expect(ids.stderr).toContain('--prompt-ids takes a non-empty JSON list of token ids');
    const outside = await hone('generate', '--model', model, '--prompt-ids', '[99]');
    expect(outside.stderr).toContain('token 99 is outside the vocabulary (0..36)');
    const sampling = await hone('generate', '--model', model, '--prompt-ids', '[1]', '--top-p', '0');
    expect(sampling.stderr).toContain('top-p must be above 0 and at most 1, not 0');
  });
});
