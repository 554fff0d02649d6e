import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { loadAdapter } from '../core/checkpoint';
import type { ModelConfig } from '../core/model-config';
import { loadTokenizer, type ModelTokenizer } from '../core/tokenizer';
import type { Method } from '../core/training/settings';
import type { EngineKernels } from '../workers/engine/model/kernels';
import { RewardScorer } from '../workers/engine/model/reward-scorer';
import type { GpuWeights } from '../workers/engine/model/weights';
import { jsRewardSource } from '../workers/engine/train/js-reward';
import { onnxRewardSource } from '../workers/engine/train/onnx-reward';
import { type RewardSource, rewardModelSource } from '../workers/engine/train/rewards';
import { exists, folderReader } from './folder';
import { spawnNodeRuleWorker } from './rule-worker';

export interface RewardFlags {
  'reward-model'?: string;
  'reward-js'?: string;
  'reward-onnx'?: string;
}

/** Builds the reward on the engine, once the weights are on the GPU: `rows` sequences of up to `seq` per forward. */
export type RewardBuilder = (
  engine: { device: GPUDevice; kernels: EngineKernels; weights: GpuWeights },
  shape: { rows: number; seq: number },
  padId: number,
) => Promise<RewardSource>;

/**
 * The reward `hone train --method grpo` takes from exactly one of --reward-model DIR (a reward adapter trained with
 * --method rm), --reward-js FILE (a rule) or --reward-onnx FILE, read and checked before any GPU work; null for
 * the other methods, which refuse the flags. An ONNX model reads text through the tokenizer in its folder, or the
 * policy's (`policyTokenizer`) when there is none.
 */
export async function readRewardFlags(
  flags: RewardFlags,
  method: Method,
  config: ModelConfig,
  policyTokenizer: ModelTokenizer,
): Promise<RewardBuilder | null> {
  const given = (['reward-model', 'reward-js', 'reward-onnx'] as const).filter((f) => flags[f] !== undefined);
  if (method !== 'grpo') {
    if (given.length > 0) throw new Error(`--${given[0]} gives policy optimization its reward; it needs --method grpo`);
    return null;
  }
  if (given.length !== 1) {
    throw new Error(
      'policy optimization needs one reward: --reward-model DIR (trained with --method rm), --reward-js FILE ' +
        `or --reward-onnx FILE${given.length > 1 ? `, not ${given.map((f) => `--${f}`).join(' and ')}` : ''}`,
    );
  }
  const dir = flags['reward-model'];
  if (dir !== undefined) {
    const adapter = await loadAdapter(folderReader(dir), dir, config, 'SEQ_CLS');
    return async ({ device, kernels, weights }, shape, padId) =>
      rewardModelSource(dir, new RewardScorer(device, kernels, weights, adapter, shape, padId));
  }
  const js = flags['reward-js'];
  if (js !== undefined) {
    const source = await readFile(js, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new Error(`--reward-js ${js}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    });
    // Loaded now, so a rule that does not parse stops the run before the model does any work.
    const rule = await jsRewardSource(basename(js), source, spawnNodeRuleWorker);
    return async () => rule;
  }
  const onnx = flags['reward-onnx'] as string;
  const model = await readFile(onnx).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`--reward-onnx ${onnx}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  // Its own tokenizer when its folder has one; otherwise it reads text as the policy does.
  const folder = dirname(onnx);
  const tokenizer = (await exists(join(folder, 'tokenizer.json')))
    ? await loadTokenizer(folderReader(folder), folder)
    : policyTokenizer;
  const source = await onnxRewardSource(basename(onnx), new Uint8Array(model), tokenizer);
  return async () => source;
}
