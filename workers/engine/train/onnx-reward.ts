import * as ort from 'onnxruntime-web';
import { renderChat } from '../../../core/dataset/render';
import type { ModelTokenizer } from '../../../core/tokenizer';
import type { RewardSample, RewardSource } from './rewards';

/** Inputs a Hugging Face sequence-classification export may declare, and what one sequence feeds them. */
const INPUTS: Record<string, (length: number) => BigInt64Array> = {
  input_ids: () => new BigInt64Array(0),
  attention_mask: (n) => new BigInt64Array(n).fill(1n),
  token_type_ids: (n) => new BigInt64Array(n),
  position_ids: (n) => BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
};

/**
 * An ONNX sequence-classification model (one label: the reward) run with onnxruntime-web, on the CPU through
 * WebAssembly, beside the WebGPU engine. It reads text, not the policy's ids: each prompt and completion is rendered
 * as a conversation through `tokenizer` (the reward model's own, or the policy's when they share one), one sequence
 * per run so no padding convention of the export matters.
 */
export async function onnxRewardSource(
  name: string,
  model: Uint8Array,
  tokenizer: ModelTokenizer,
): Promise<RewardSource> {
  ort.env.wasm.numThreads = 1;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model);
  } catch (error) {
    throw new Error(`${name}: onnxruntime cannot load it as a model (${(error as Error).message})`);
  }
  if (!session.inputNames.includes('input_ids')) {
    throw new Error(`${name}: a sequence-classification model takes input_ids; this one takes ${session.inputNames}`);
  }
  const unknown = session.inputNames.filter((input) => !(input in INPUTS));
  if (unknown.length > 0) throw new Error(`${name}: Hone does not know what to feed its input ${unknown.join(', ')}`);
  const output = session.outputNames.includes('logits') ? 'logits' : session.outputNames[0];

  const scoreOne = async (sample: RewardSample, index: number): Promise<number> => {
    const { ids } = renderChat(tokenizer, [
      { role: 'user', content: sample.prompt },
      { role: 'assistant', content: sample.completion },
    ]);
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of session.inputNames) {
      const data = input === 'input_ids' ? BigInt64Array.from(ids, BigInt) : INPUTS[input](ids.length);
      feeds[input] = new ort.Tensor('int64', data, [1, ids.length]);
    }
    const result = (await session.run(feeds))[output];
    if (result.data.length !== 1) {
      throw new Error(
        `${name}: its ${output} hold ${result.data.length} values per sequence; a reward model gives one`,
      );
    }
    const reward = Number(result.data[0]);
    if (!Number.isFinite(reward)) throw new Error(`${name}: it scored completion ${index} ${reward}`);
    return reward;
  };

  return {
    name,
    async score(samples) {
      const rewards: number[] = [];
      for (const [i, sample] of samples.entries()) rewards.push(await scoreOne(sample, i));
      return rewards;
    },
    destroy: () => void session.release(),
  };
}
