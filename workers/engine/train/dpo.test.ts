import { describe, expect, it } from 'vitest';
import { defaultSettings } from '../../../core/training/settings';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { preferencePairsFixture as pairs } from '../../../tests/helpers/preference-pairs';
import { readFloat32 } from '../gpu/buffers';
import { EngineKernels } from '../model/kernels';
import { GpuWeights } from '../model/weights';
import { randomWeights, tinyConfig } from '../reference/random-model';
import { dpoObjective } from './dpo';
import { runTraining, Trainer } from './trainer';

const gpu = setupTestGpu();
const config = tinyConfig();

const settings = {
  ...defaultSettings('dpo', 1000),
  loraR: 4,
  loraAlpha: 8,
  loraDropout: 0,
  lr: 0.02,
  batchSize: 2,
  gradAccum: 2,
  seqLen: 16,
  maxSteps: 12,
  schedule: 'constant' as const,
  warmup: 0,
  evalEvery: 0,
  checkpointEvery: 0,
};

describe('DPO on the engine', () => {
  it('starts at log 2 (the policy is its reference) and raises the chosen answers over the rejected', async () => {
    const { device } = gpu();
    const weights = await GpuWeights.upload(device, config, (key) =>
      Float32Array.from(randomWeights(config, 3).get(key) ?? []),
    );
    // Validated on its own pairs: what DPO must do is move these, whatever it does to others.
    const train = pairs(8, 1);
    const trainer = new Trainer(
      device,
      new EngineKernels(device),
      weights,
      settings,
      { train, validation: train, padId: 0 },
      dpoObjective(0.5),
    );
    await trainer.prepare();
    const before = await trainer.evaluate();
    expect(before?.loss).toBeCloseTo(Math.log(2), 5);
    expect(before?.accuracy).toBe(0);
    const losses: number[] = [];
    await runTraining(trainer, { onStep: (m) => losses.push(m.loss) });
    expect(losses[0]).toBeCloseTo(Math.log(2), 5);
    expect(losses.at(-1)).toBeLessThan(0.5);
    const after = await trainer.evaluate();
    expect(after?.loss).toBeLessThan(0.5);
    expect(after?.accuracy).toBe(1);
    trainer.destroy();
    weights.destroy();
  });

  it('resumes to the same adapter, the reference taken again before the restore', async () => {
    const { device } = gpu();
    const kernels = new EngineKernels(device);
    const weights = await GpuWeights.upload(device, config, (key) =>
      Float32Array.from(randomWeights(config, 3).get(key) ?? []),
    );
    const data = { train: pairs(6, 4), validation: [], padId: 0 };
    const make = async () => {
      const t = new Trainer(device, kernels, weights, settings, data, dpoObjective(0.5));
      await t.prepare();
      return t;
    };
    const whole = await make();
    await runTraining(whole);
    const expected = await readFloat32(device, whole.lora?.params as GPUBuffer);
    whole.destroy();
    const first = await make();
    let saved: Awaited<ReturnType<Trainer['checkpoint']>> | null = null;
    let steps = 0;
    await runTraining(first, {
      onStep: () => steps++,
      shouldStop: () => steps === 5,
      onCheckpoint: async (c) => {
        saved = c;
      },
    });
    first.destroy();
    const second = await make();
    second.restore(saved as unknown as Awaited<ReturnType<Trainer['checkpoint']>>);
    await runTraining(second);
    expect(await readFloat32(device, second.lora?.params as GPUBuffer)).toEqual(expected);
    second.destroy();
    weights.destroy();
  });
});
