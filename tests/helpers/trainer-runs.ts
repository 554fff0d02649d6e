import { expect } from 'vitest';
import type { ModelConfig } from '../../core/model-config';
import { defaultSettings, type Method, type TrainSettings } from '../../core/training/settings';
import { readFloat32 } from '../../workers/engine/gpu/buffers';
import type { GpuWeights } from '../../workers/engine/model/weights';
import { randomWeights } from '../../workers/engine/reference/random-model';
import { runTraining, type Trainer, type TrainerCheckpoint } from '../../workers/engine/train/trainer';
import { uploadWeights } from './gpu-model';

/** Settings for a few quick steps on a random tiny model: a small adapter, constant rate, no evaluation. */
export function tinyRunSettings(method: Method, overrides: Partial<TrainSettings> = {}): TrainSettings {
  return {
    ...defaultSettings(method, 1000),
    loraR: 4,
    loraAlpha: 8,
    loraDropout: 0,
    lr: 0.02,
    batchSize: 2,
    gradAccum: 2,
    seqLen: 16,
    maxSteps: 12,
    schedule: 'constant',
    warmup: 0,
    evalEvery: 0,
    checkpointEvery: 0,
    checkpointMinutes: 0,
    ...overrides,
  };
}

/** A seeded random model of `config` on the GPU (fp32), its weights generated once. */
export function randomGpuWeights(device: GPUDevice, config: ModelConfig, seed: number): Promise<GpuWeights> {
  const weights = randomWeights(config, seed);
  return uploadWeights(device, config, weights);
}

/** Everything a run trains: the adapter and, when the objective has one, its head. */
async function trained(device: GPUDevice, trainer: Trainer<unknown>): Promise<number[]> {
  const buffers = [trainer.lora?.params, trainer.head?.paramGroup.param].filter((b) => b !== undefined);
  const values: number[] = [];
  for (const b of buffers) values.push(...(await readFloat32(device, b)));
  return values;
}

/**
 * Runs `make()`'s trainer to the end, then another stopped after `stopAt` steps and a third restored from its
 * checkpoint: the resumed run must end with exactly the uninterrupted run's parameters.
 */
export async function expectResumeToMatch(
  device: GPUDevice,
  make: () => Trainer<unknown> | Promise<Trainer<unknown>>,
  stopAt: number,
): Promise<void> {
  const whole = await make();
  await runTraining(whole);
  const expected = await trained(device, whole);
  whole.destroy();
  const first = await make();
  let saved: TrainerCheckpoint | null = null;
  let steps = 0;
  const outcome = await runTraining(first, {
    onStep: () => steps++,
    shouldStop: () => steps === stopAt,
    onCheckpoint: async (c) => {
      saved = c;
    },
  });
  expect(outcome).toBe('stopped');
  first.destroy();
  const second = await make();
  second.restore(saved as unknown as TrainerCheckpoint);
  expect(second.stepsCompleted).toBe(stopAt);
  await runTraining(second);
  expect(await trained(device, second)).toEqual(expected);
  second.destroy();
}
