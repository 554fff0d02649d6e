import type { PreparedRun } from '../../../core/training/prepare';
import type { TrainSettings } from '../../../core/training/settings';
import type { EngineKernels } from '../model/kernels';
import type { GpuWeights } from '../model/weights';
import { dpoObjective } from './dpo';
import { rewardObjective } from './reward-model';
import { Trainer } from './trainer';

/**
 * The trainer a prepared run needs: next-token loss over sequences, or a reward model or DPO over preference pairs,
 * with the work its objective does before the first step already done (so a checkpoint can be restored straight
 * after).
 */
export async function createTrainer(
  device: GPUDevice,
  kernels: EngineKernels,
  weights: GpuWeights,
  settings: TrainSettings,
  data: PreparedRun['data'],
  padId: number,
): Promise<Trainer<unknown>> {
  const pairObjective = () =>
    settings.method === 'rm' ? rewardObjective(settings.seed, padId) : dpoObjective(settings.dpoBeta);
  const trainer =
    data.kind === 'pairs'
      ? new Trainer(device, kernels, weights, settings, { ...data, padId }, pairObjective())
      : new Trainer(device, kernels, weights, settings, { ...data, padId });
  await trainer.prepare();
  return trainer as Trainer<unknown>;
}
