import { describe, expect, it } from 'vitest';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { preferencePairsFixture as pairs } from '../../../tests/helpers/preference-pairs';
import { expectResumeToMatch, randomGpuWeights, tinyRunSettings } from '../../../tests/helpers/trainer-runs';
import { EngineKernels } from '../model/kernels';
import { tinyConfig } from '../reference/random-model';
import { dpoObjective } from './dpo';
import { runTraining, Trainer } from './trainer';

const gpu = setupTestGpu();
const config = tinyConfig();

const settings = tinyRunSettings('dpo');

describe('DPO on the engine', () => {
  it('starts at log 2 (the policy is its reference) and raises the chosen answers over the rejected', async () => {
    const { device } = gpu();
    const weights = await randomGpuWeights(device, config, 3);
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
    const weights = await randomGpuWeights(device, config, 3);
    const data = { train: pairs(6, 4), validation: [], padId: 0 };
    // The reference is taken again in `prepare` before the restore, as a resumed run does.
    await expectResumeToMatch(
      device,
      async () => {
        const t = new Trainer(device, kernels, weights, settings, data, dpoObjective(0.5));
        await t.prepare();
        return t as Trainer<unknown>;
      },
      5,
    );
    weights.destroy();
  });
});
