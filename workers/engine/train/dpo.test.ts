import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../core/random';
import type { PreferencePair } from '../../../core/training/sequences';
import { defaultSettings } from '../../../core/training/settings';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { readFloat32 } from '../gpu/buffers';
import { EngineKernels } from '../model/kernels';
import { GpuWeights } from '../model/weights';
import { randomWeights, tinyConfig } from '../reference/random-model';
import { dpoObjective } from './dpo';
import { runTraining, Trainer } from './trainer';

const gpu = setupTestGpu();
const config = tinyConfig();

/** A prompt, a chosen answer (a fixed function of the prompt) and a rejected one (another). */
function pairs(count: number, seed: number): PreferencePair[] {
  const next = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const prompt = Array.from({ length: 3 + Math.floor(next() * 3) }, () => 1 + Math.floor(next() * 30));
    const answer = (f: (id: number) => number) => {
      const ids = [...prompt, ...prompt.map(f)];
      return { ids, labels: ids.map((id, i) => (i < prompt.length ? -100 : id)) };
    };
    return { chosen: answer((id) => (id * 7) % 31), rejected: answer((id) => (id * 3 + 5) % 31) };
  });
}

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
    expect(before).toBeCloseTo(Math.log(2), 5);
    const losses: number[] = [];
    await runTraining(trainer, { onStep: (m) => losses.push(m.loss) });
    expect(losses[0]).toBeCloseTo(Math.log(2), 5);
    expect(losses.at(-1)).toBeLessThan(0.5);
    expect(await trainer.evaluate()).toBeLessThan(0.5);
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
