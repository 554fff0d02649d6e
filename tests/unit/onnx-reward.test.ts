import { describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { renderChat } from '../../core/dataset/render';
import { loadTokenizer } from '../../core/tokenizer';
import { onnxRewardSource } from '../../workers/engine/train/onnx-reward';
import { meanTokenWeightOnnx } from '../helpers/onnx-model';

const weights = Float32Array.from({ length: 4096 }, (_, id) => (id % 7) / 7);

describe('an ONNX reward model through onnxruntime-web', () => {
  it('scores each prompt and completion rendered as a conversation through its tokenizer', async () => {
    const tokenizer = await loadTokenizer(folderReader('public/models/hone-tiny'), 'hone-tiny');
    const source = await onnxRewardSource('mean.onnx', meanTokenWeightOnnx(weights), tokenizer);
    const samples = [
      { prompt: 'Mend the nets.', completion: 'Aye, captain!', ids: [] },
      { prompt: 'Raise the sails.', completion: 'No.', ids: [] },
    ];
    const expected = samples.map((s) => {
      const { ids } = renderChat(tokenizer, [
        { role: 'user', content: s.prompt },
        { role: 'assistant', content: s.completion },
      ]);
      return ids.reduce((sum, id) => sum + weights[id], 0) / ids.length;
    });
    const rewards = await source.score(samples);
    expect(rewards).toEqual(expected.map((v) => expect.closeTo(v, 6)));
    expect(rewards[0]).not.toBeCloseTo(rewards[1], 3);
    source.destroy();
  });

  it('refuses bytes that are not a model, naming the file', async () => {
    const tokenizer = await loadTokenizer(folderReader('public/models/hone-tiny'), 'hone-tiny');
    await expect(onnxRewardSource('junk.onnx', new Uint8Array([1, 2, 3, 4]), tokenizer)).rejects.toThrow(
      /junk.onnx: onnxruntime cannot load it as a model/,
    );
  });
});
