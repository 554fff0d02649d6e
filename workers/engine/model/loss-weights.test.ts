import { describe, expect, it } from 'vitest';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { readFloat32 } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { randomLora, randomWeights, tinyConfig } from '../reference/random-model';
import { EngineKernels } from './kernels';
import { everyLayer, GpuLora } from './lora';
import { TransformerStep } from './transformer';

const gpu = setupTestGpu();

describe('per-position loss weights (for objectives built on log-probabilities)', () => {
  it('give each token its cross-entropy, and a backward that is linear in the weights, signs included', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const kernels = new EngineKernels(device);
    const weights = randomWeights(config, 4);
    const gw = await uploadWeights(device, config, weights);
    const ref = randomLora(config, ['q_proj', 'down_proj'], 2, 4, false, 5);
    const lora = GpuLora.create(
      device,
      config,
      { r: 2, loraAlpha: 4, useRslora: false, loraDropout: 0, modules: everyLayer(config, ['q_proj', 'down_proj']) },
      fromReference(ref),
    );
    const seq = 7;
    const step = new TransformerStep(device, kernels, gw, lora, { batch: 2, seq }, { full: false });
    const tokens = [
      [1, 5, 9, 2, 7, 3, 30],
      [4, 4, 8, 1, 0, 6, 12],
    ];
    const labels = [
      [-100, -100, 9, 2, 7, 3, 30],
      [-100, -100, -100, 1, 0, 6, -100],
    ];
    step.setBatch(tokens, labels);
    submitOps(device, step.forwardOps);
    const mean = await step.readLoss();
    const perToken = await step.readTokenLosses();
    expect(perToken.reduce((a, b) => a + b, 0)).toBeCloseTo(mean, 5);

    // Weights of 1: each counted position holds its own cross-entropy; the mean is their average.
    step.setLossWeights(new Float32Array(2 * seq).fill(1));
    submitOps(device, step.forwardOps);
    const ce = await step.readTokenLosses();
    // Position t predicts the label at t + 1 of its row.
    const countedAt = (t: number) => t % seq < seq - 1 && labels[Math.floor(t / seq)][(t % seq) + 1] !== -100;
    const counted = [...ce.keys()].filter(countedAt);
    expect(counted).toEqual([1, 2, 3, 4, 5, 9, 10, 11]);
    expect([...ce].filter((_, t) => !countedAt(t)).every((v) => v === 0)).toBe(true);
    expect(counted.reduce((s, t) => s + ce[t], 0) / counted.length).toBeCloseTo(mean, 5);

    const gradsFor = async (rowWeights: [number, number]) => {
      step.setLossWeights(Float32Array.from({ length: 2 * seq }, (_, t) => rowWeights[Math.floor(t / seq)]));
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps]);
      return readFloat32(device, lora.grads);
    };
    const first = await gradsFor([1, 0]);
    const second = await gradsFor([0, 1]);
    const mixed = await gradsFor([0.3, -0.7]);
    expect(
      maxRelativeError(
        mixed,
        Float64Array.from(first, (g, i) => 0.3 * g - 0.7 * second[i]),
      ),
    ).toBeLessThan(1e-4);
    expect(() => step.setLossWeights(new Float32Array(3))).toThrow('loss weights must be 14 values');
    step.destroy();
  });
});
