import { describe, expect, it } from 'vitest';
import { padBatch } from '../../../core/dataset/batches';
import { PROJECTIONS } from '../../../core/model-config';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { preferencePairsFixture as pairs } from '../../../tests/helpers/preference-pairs';
import { expectResumeToMatch, randomGpuWeights, tinyRunSettings } from '../../../tests/helpers/trainer-runs';
import { readFloat32 } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { EngineKernels } from '../model/kernels';
import { everyLayer, GpuLora } from '../model/lora';
import type { RewardHead } from '../model/reward-head';
import { TransformerStep } from '../model/transformer';
import { randomLora, randomWeights, tinyConfig } from '../reference/random-model';
import { referenceRewardForwardBackward } from '../reference/transformer.cpu';
import { rewardObjective } from './reward-model';
import { runTraining, Trainer } from './trainer';

const gpu = setupTestGpu();

const settings = tinyRunSettings('rm', { maxSteps: 20 });

describe('the reward model on the engine', () => {
  it('has the float64 reference gradients for the adapter and the score head (qwen3, pairs of unequal length)', async () => {
    const { device } = gpu();
    const config = tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8, numHeads: 4, numKvHeads: 1 });
    const weights = randomWeights(config, 11);
    const targets = [...PROJECTIONS];
    const refLora = randomLora(config, targets, 3, 6, false, 12);
    const kernels = new EngineKernels(device);
    const gw = await uploadWeights(device, config, weights);
    const lora = GpuLora.create(
      device,
      config,
      { r: 3, loraAlpha: 6, useRslora: false, loraDropout: 0, modules: everyLayer(config, targets) },
      fromReference(refLora),
    );
    const items = pairs(3, 5);
    const seq = Math.max(...items.flatMap((p) => [p.chosen.ids.length, p.rejected.ids.length])) + 1;
    const step = new TransformerStep(device, kernels, gw, lora, { batch: 6, seq }, { full: false, output: 'hidden' });
    const objective = rewardObjective(7, 0);
    const head = objective.attach?.(step, { kernels, weights: gw, lora }) as RewardHead;
    const batch = padBatch(
      items.flatMap((p) => [p.chosen, p.rejected]),
      seq,
      0,
    );
    submitOps(device, [...step.zeroGradOps, ...head.zeroGradOps]);
    const loss = await objective.accumulate(step, batch, items, {
      device,
      batches: [batch],
      items: items.length,
      microBatches: 1,
      seed: 0,
    });

    const headValues = Float64Array.from(await head.readWeight());
    // Each row is scored at its last token: every id is non-zero and the padding after it is 0.
    const positions = items.flatMap((p) => [p.chosen.ids.length - 1, p.rejected.ids.length - 1]);
    const ref = referenceRewardForwardBackward(config, weights, refLora, batch.tokens, positions, headValues);
    expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    const grads = await lora.readGradients(device);
    for (const [key, g] of ref.loraGrads) {
      expect(maxRelativeError(grads.get(key)?.A ?? [], g.A), `${key} A`).toBeLessThan(1e-4);
      expect(maxRelativeError(grads.get(key)?.B ?? [], g.B), `${key} B`).toBeLessThan(1e-4);
    }
    expect(maxRelativeError(await readFloat32(device, head.grad), ref.headGrad)).toBeLessThan(1e-4);
    head.destroy();
    step.destroy();
    lora.destroy();
    gw.destroy();
  });

  it('ranks the chosen answers over the rejected: the loss falls from about log 2, accuracy reaches 1', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const weights = await randomGpuWeights(device, config, 3);
    const train = pairs(8, 1);
    const trainer = new Trainer(
      device,
      new EngineKernels(device),
      weights,
      settings,
      { train, validation: train, padId: 0 },
      rewardObjective(settings.seed, 0),
    );
    const before = await trainer.evaluate();
    const losses: number[] = [];
    await runTraining(trainer, { onStep: (m) => losses.push(m.loss) });
    const after = await trainer.evaluate();
    expect(before?.loss).toBeGreaterThan(0.4);
    expect(after?.loss).toBeLessThan(0.5 * (before?.loss ?? 0));
    expect(after?.accuracy).toBe(1);
    expect(losses.at(-1)).toBeLessThan(losses[0]);
    trainer.destroy();
    weights.destroy();
  });

  it('resumes to the same adapter and score head as an uninterrupted run', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const kernels = new EngineKernels(device);
    const weights = await randomGpuWeights(device, config, 3);
    const data = { train: pairs(6, 4), validation: [], padId: 0 };
    const make = () =>
      new Trainer(
        device,
        kernels,
        weights,
        { ...settings, maxSteps: 8 },
        data,
        rewardObjective(1, 0),
      ) as Trainer<unknown>;
    await expectResumeToMatch(device, make, 3);
    weights.destroy();
  });
});
