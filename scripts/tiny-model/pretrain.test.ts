import { describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint } from '../../core/checkpoint';
import { loadTokenizer } from '../../core/tokenizer';
import { tempDir } from '../../tests/helpers/model-folder';
import { loadCorpus } from './corpus';
import { DEFAULTS, pretrain, reportMarkdown } from './pretrain';

describe('pretrain (a toy run of the tiny model’s recipe)', () => {
  it('trains a model whose loss falls, saves it in the Hugging Face layout, and reports', async () => {
    const corpus = loadCorpus()
      .filter((d) => d.name.includes('moby-dick'))
      .slice(0, 15);
    const out = await tempDir();
    const options = {
      ...DEFAULTS,
      out,
      report: null,
      corpus,
      minutes: 5,
      steps: 60,
      batch: 4,
      seq: 16,
      vocabSize: 320,
      hidden: 32,
      intermediate: 64,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      lr: 1e-2,
      log: () => {},
    };
    const result = await pretrain(options);
    expect(result.steps).toBe(60);
    // From uniform guessing (ln vocab) to well below it.
    expect(result.curve.at(-1)?.train).toBeLessThan(Math.log(result.config.vocabSize) - 1);
    expect(result.curve.at(-1)?.train).toBeLessThan(result.curve[0].train);
    expect(result.heldOutLoss).toBeLessThan(Math.log(result.config.vocabSize));
    expect(result.samples).toHaveLength(4);

    const read = folderReader(out);
    const checkpoint = await loadCheckpoint(read, out);
    expect(checkpoint.config).toEqual(result.config);
    expect(checkpoint.tensors.get('model.embed_tokens.weight')?.dtype).toBe('BF16');
    const tokenizer = await loadTokenizer(read, out);
    expect(tokenizer.decode(tokenizer.encode('Call me Ishmael.'))).toBe('Call me Ishmael.');
    expect(tokenizer.hasChatTemplate).toBe(true);

    const report = reportMarkdown(result, options);
    expect(report).toContain('## Quality');
    expect(report).toContain(`${result.steps} steps`);
  });
});
