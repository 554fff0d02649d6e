import type { ModelTokenizer } from '../../../core/tokenizer';
import type { PreparedRun } from '../../../core/training/prepare';
import type { TrainSettings } from '../../../core/training/settings';
import type { EngineKernels } from '../model/kernels';
import type { GpuWeights } from '../model/weights';
import { dpoObjective } from './dpo';
import { grpoObjective } from './grpo';
import { rewardObjective } from './reward-model';
import type { RewardSource } from './rewards';
import { type Objective, Trainer } from './trainer';

/**
 * The trainer a prepared run needs: next-token loss over sequences, a reward model or DPO over preference pairs,
 * policy optimization over prompts (with `reward`, which it then owns), with the work its objective does before
 * the first step already done (so a checkpoint can be restored straight after).
 */
export async function createTrainer(
  device: GPUDevice,
  kernels: EngineKernels,
  weights: GpuWeights,
  settings: TrainSettings,
  data: PreparedRun['data'],
  tokenizer: ModelTokenizer,
  reward?: RewardSource,
): Promise<Trainer<unknown>> {
  const padId = tokenizer.padTokenId;
  const make = <T>(train: T[], validation: T[], objective?: Objective<T>) =>
    new Trainer<T>(device, kernels, weights, settings, { train, validation, padId }, objective) as Trainer<unknown>;
  let trainer: Trainer<unknown>;
  if (data.kind === 'prompts') {
    if (!reward) throw new Error('policy optimization needs a reward: a reward model, a rule or an ONNX model');
    const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const objective = grpoObjective({ settings, reward, stopIds: tokenizer.eosTokenIds, decode, padId });
    trainer = make(data.train, data.validation, objective);
  } else if (data.kind === 'pairs') {
    const objective = settings.method === 'rm' ? rewardObjective(settings.seed, padId) : dpoObjective(settings.dpoBeta);
    trainer = make(data.train, data.validation, objective);
  } else {
    trainer = make(data.train, data.validation);
  }
  await trainer.prepare();
  return trainer;
}
