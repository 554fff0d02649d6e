import { loadAdapter } from '../../../core/checkpoint';
import { expandZip } from '../../../core/export/unzip-folder';
import { loadTokenizer, type ModelTokenizer } from '../../../core/tokenizer';
import type { EngineKernels } from '../model/kernels';
import { RewardScorer } from '../model/reward-scorer';
import type { GpuWeights } from '../model/weights';
import { filesReader } from '../model-loader';
import { jsRewardSource, REWARD_WORKER_CODE, type RuleWorker } from './js-reward';
import { onnxRewardSource } from './onnx-reward';
import { type RewardSource, rewardModelSource } from './rewards';

/**
 * The reward a person picks in the Train step for policy optimization: a rule they wrote, a reward model's PEFT
 * folder (trained with the reward model method here or elsewhere), or a folder holding an ONNX
 * sequence-classification model (with its tokenizer, or read with the policy's). Plain data and Blobs, so it
 * crosses to the worker and is kept with the run for resuming.
 */
export type RewardChoice =
  | { kind: 'rule'; name: string; source: string }
  | { kind: 'reward-model' | 'onnx'; name: string; files: { path: string; file: Blob }[] }
  | KeptRewardModel;

/** A reward model trained in this browser: a kept run's adapter at one of its checkpoints. */
export interface KeptRewardModel {
  kind: 'kept-run';
  name: string;
  run: string;
  step: number;
}

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

/**
 * The reward source a choice describes, over the loaded model's weights: `rows` sequences of up to `seq` at once. An
 * ONNX model without a tokenizer in its folder reads text as the policy does.
 */
export async function rewardFromChoice(
  choice: RewardChoice,
  engine: { device: GPUDevice; kernels: EngineKernels; weights: GpuWeights },
  shape: { rows: number; seq: number },
  context: { policyTokenizer: ModelTokenizer; spawnRuleWorker: () => RuleWorker },
): Promise<RewardSource> {
  const { policyTokenizer } = context;
  if (choice.kind === 'rule') return jsRewardSource(choice.name, choice.source, context.spawnRuleWorker);
  // The session turns a kept run into its adapter's files before the run is built.
  if (choice.kind === 'kept-run') throw new Error(`${choice.name}: the kept run was not read`);
  const files = await expandZip(choice.files);
  if (choice.kind === 'onnx') {
    const model = files.find((f) => f.path.endsWith('.onnx'));
    if (!model) throw new Error(`${choice.name}: the folder holds no .onnx file`);
    const read = filesReader(files);
    const tokenizer = (await read('tokenizer.json')) ? await loadTokenizer(read, choice.name) : policyTokenizer;
    return onnxRewardSource(model.path, new Uint8Array(await model.file.arrayBuffer()), tokenizer);
  }
  const padId = policyTokenizer.padTokenId;
  const adapter = await loadAdapter(filesReader(files), choice.name, engine.weights.config, 'SEQ_CLS');
  const { device, kernels, weights } = engine;
  return rewardModelSource(choice.name, new RewardScorer(device, kernels, weights, adapter, shape, padId));
}
