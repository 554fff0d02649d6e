import { loadAdapter } from '../../../core/checkpoint';
import type { EngineKernels } from '../model/kernels';
import { RewardScorer } from '../model/reward-scorer';
import type { GpuWeights } from '../model/weights';
import { filesReader } from '../model-loader';
import { jsRewardSource, REWARD_WORKER_CODE, type RuleWorker } from './js-reward';
import { type RewardSource, rewardModelSource } from './rewards';

/**
 * The reward a person picks in the Train step for policy optimization: a rule they wrote, or a reward model's PEFT
 * folder (trained with the reward model method here or elsewhere). Plain data and Blobs, so it crosses to the
 * worker and is kept with the run for resuming.
 */
export type RewardChoice =
  | { kind: 'rule'; name: string; source: string }
  | { kind: 'reward-model'; name: string; files: { path: string; file: Blob }[] };

/** A rule's worker as a browser Web Worker (nested in the engine worker). */
export function spawnWebRuleWorker(): RuleWorker {
  const url = URL.createObjectURL(new Blob([REWARD_WORKER_CODE], { type: 'text/javascript' }));
  const worker = new Worker(url);
  URL.revokeObjectURL(url);
  return {
    post: (message) => worker.postMessage(message),
    onMessage: (handler) => worker.addEventListener('message', (event) => handler(event.data)),
    terminate: () => worker.terminate(),
  };
}

/** The reward source a choice describes, over the loaded model's weights: `rows` sequences of up to `seq` at once. */
export async function rewardFromChoice(
  choice: RewardChoice,
  engine: { device: GPUDevice; kernels: EngineKernels; weights: GpuWeights },
  shape: { rows: number; seq: number },
  padId: number,
): Promise<RewardSource> {
  if (choice.kind === 'rule') return jsRewardSource(choice.name, choice.source, spawnWebRuleWorker);
  const adapter = await loadAdapter(filesReader(choice.files), choice.name, engine.weights.config, 'SEQ_CLS');
  const { device, kernels, weights } = engine;
  return rewardModelSource(choice.name, new RewardScorer(device, kernels, weights, adapter, shape, padId));
}
