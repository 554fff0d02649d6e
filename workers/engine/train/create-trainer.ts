import type { LoadedAdapter } from '../../../core/checkpoint';
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

export interface RunParts {
  settings: TrainSettings;
  data: PreparedRun['data'];
  tokenizer: ModelTokenizer;
  /** Policy optimization's reward, which the trainer then owns. */
  reward?: RewardSource;
  /** An adapter to continue from (of the settings' LoRA shape; a reward model's with its head). */
  initial?: LoadedAdapter;
}

/**
 * The trainer a prepared run needs: next-token loss over sequences, a reward model or DPO over preference pairs,
 * policy optimization over prompts, with the work its objective does before the first step already done (so a
 * checkpoint can be restored straight after). DPO's reference is the model the run starts from: the base model, or
 * the base with the adapter it continues.
 */
export async function createTrainer(
  engine: { device: GPUDevice; kernels: EngineKernels; weights: GpuWeights },
  run: RunParts,
): Promise<Trainer<unknown>> {
  const { device, kernels, weights } = engine;
  const { settings, data, tokenizer, reward, initial } = run;
  const padId = tokenizer.padTokenId;
  const make = <T>(train: T[], validation: T[], objective?: Objective<T>) =>
    new Trainer<T>(
      device,
      kernels,
      weights,
      settings,
      { train, validation, padId },
      objective,
      initial,
    ) as Trainer<unknown>;
  let trainer: Trainer<unknown>;
  if (data.kind === 'prompts') {
    if (!reward) throw new Error('policy optimization needs a reward: a reward model, a rule or an ONNX model');
    const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const objective = grpoObjective({ settings, reward, stopIds: tokenizer.eosTokenIds, decode, padId });
    trainer = make(data.train, data.validation, objective);
  } else if (data.kind === 'pairs') {
    const head = initial?.scoreKey ? Float32Array.from(initial.file.readFloat32(initial.scoreKey)) : undefined;
    const objective =
      settings.method === 'rm' ? rewardObjective(settings.seed, padId, head) : dpoObjective(settings.dpoBeta);
    trainer = make(data.train, data.validation, objective);
  } else {
    trainer = make(data.train, data.validation);
  }
  await trainer.prepare();
  return trainer;
}
