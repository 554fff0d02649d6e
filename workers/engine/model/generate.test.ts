import { describe, expect, it } from 'vitest';
import type { Decoder } from './decoder';
import { generate } from './generate';

/**
 * A one-row decoder whose model always predicts the next id of a script (one-hot logits over a vocabulary of 10):
 * each draw, on the CPU from the logits or on the GPU, takes the script's next id.
 */
function scripted(script: number[], maxLength = 64) {
  let drawn = 0;
  let cached = 0;
  const run = (ids: readonly number[]) => {
    expect(ids).toHaveLength(1);
    cached++;
  };
  const fake = {
    maxLength,
    rows: 1,
    vocabSize: 10,
    get cached() {
      return cached;
    },
    reset: () => {
      drawn = 0;
      cached = 0;
    },
    idle: async () => {},
    advance: run,
    prefill: (tokens: ReadonlyArray<readonly number[]>) => {
      expect(tokens).toHaveLength(1);
      cached += tokens[0].length;
    },
    stepRows: async (ids: readonly number[]) => {
      run(ids);
      const next = script[drawn++];
      return Float32Array.from({ length: 10 }, (_, i) => (i === next ? 10 : 0));
    },
    drawStep: async (_t: number, _u: readonly number[], forced: readonly number[], inputs?: readonly number[]) => {
      if (inputs) run(inputs);
      else cached++;
      return Uint32Array.of(forced[0] >= 0 ? forced[0] : script[drawn++]);
    },
  };
  return fake as unknown as Decoder;
}

const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
const letters = (ids: number[]) => ids.map((i) => 'abcdefghij'[i]).join('');

describe('the generation loop', () => {
  it('stops at a stop token, which is left out, drawing on the GPU or (with a repetition penalty) on the CPU', async () => {
    for (const sampling of [greedy, { ...greedy, temperature: 0.5, topK: 1, repetitionPenalty: 1.1 }]) {
      const g = await generate(scripted([1, 2, 9, 3]), [0, 4], { ...sampling, maxNewTokens: 10, stopIds: [9] });
      expect(g).toMatchObject({ ids: [1, 2], stoppedBy: 'stop-token', stopId: 9 });
    }
  });

  it('stops at a stop string and cuts the text before it', async () => {
    const g = await generate(scripted([1, 2, 3, 4, 5]), [0], {
      ...greedy,
      maxNewTokens: 10,
      stopIds: [],
      stopStrings: ['de', 'zz'],
      decode: letters,
    });
    expect(g).toMatchObject({ ids: [1, 2, 3, 4], text: 'bc', stoppedBy: 'stop-string' });
  });

  it('stops at max new tokens, at the decoder length, and when told to', async () => {
    const script = [1, 2, 3, 4, 5, 6, 7];
    expect(await generate(scripted(script), [0], { ...greedy, maxNewTokens: 3, stopIds: [] })).toMatchObject({
      ids: [1, 2, 3],
      stoppedBy: 'length',
    });
    expect(await generate(scripted(script, 4), [0, 0], { ...greedy, maxNewTokens: 9, stopIds: [] })).toMatchObject({
      ids: [1, 2],
      stoppedBy: 'length',
    });
    let heard = 0;
    const g = await generate(
      scripted(script),
      [0],
      { ...greedy, maxNewTokens: 9, stopIds: [], decode: letters },
      () => ++heard < 2,
    );
    expect(g).toMatchObject({ ids: [1, 2], text: 'bc', stoppedBy: 'cancelled' });
    await expect(generate(scripted(script, 2), [0, 0], { ...greedy, maxNewTokens: 1, stopIds: [] })).rejects.toThrow(
      "the prompt's 2 tokens leave no room in 2",
    );
  });
});
