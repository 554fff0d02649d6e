import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../core/model-config';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { submitOps } from '../gpu/ops';
import { randomLora, randomWeights, tinyConfig } from '../reference/random-model';
import { referenceForwardBackward } from '../reference/transformer.cpu';
import { EngineKernels } from './kernels';
import { everyLayer, GpuLora } from './lora';
import { TransformerStep } from './transformer';

const gpu = setupTestGpu();

describe('setBatchTargets: targets given per position, unshifted', () => {
  it('equals the reference on the stream one token longer (causal attention: the extra token changes nothing before it)', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const [batch, seq] = [2, 6];
    const weights = randomWeights(config, 3);
    const refLora = randomLora(config, [...PROJECTIONS], 2, 4, false, 7);
    const gw = await uploadWeights(device, config, weights);
    const lora = GpuLora.create(
      device,
      config,
      { r: 2, loraAlpha: 4, useRslora: false, loraDropout: 0, modules: everyLayer(config, PROJECTIONS) },
      fromReference(refLora),
    );
    const step = new TransformerStep(device, new EngineKernels(device), gw, lora, { batch, seq }, { full: false });

    // Streams of seq + 1 ids: the window is the first seq, each position predicts the id after it, the last one
    // included (setBatch cannot express that: its last position has nothing to predict). One target ignored.
    const streams = Array.from({ length: batch }, (_, b) =>
      Array.from({ length: seq + 1 }, (_, t) => (b * 11 + t * 5 + 2) % config.vocabSize),
    );
    const targets = streams.map((s, b) => s.slice(1).map((id, t) => (b === 1 && t === 2 ? -100 : id)));
    step.setBatchTargets(
      streams.map((s) => s.slice(0, seq)),
      targets,
    );
    submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps]);

    // The reference over the whole stream, HF-style labels (shifted inside): the same targets, same positions.
    const labels = targets.map((row) => [-100, ...row]);
    const ref = referenceForwardBackward(config, weights, refLora, streams, labels);
    expect(Math.abs((await step.readLoss()) - ref.loss) / ref.loss).toBeLessThan(1e-5);
    const grads = await lora.readGradients(device);
    for (const [key, g] of ref.loraGrads) {
      expect(maxRelativeError(grads.get(key)?.A ?? [], g.A), `${key} A`).toBeLessThan(1e-4);
      expect(maxRelativeError(grads.get(key)?.B ?? [], g.B), `${key} B`).toBeLessThan(1e-4);
    }

    const ids = streams.map((s) => s.slice(0, seq));
    expect(() => step.setBatchTargets(ids, targets.slice(1))).toThrow('targets must have the shape of tokens');
    expect(() => step.setBatchTargets(ids, [targets[0], [...targets[1].slice(1), 37]])).toThrow(
      'target 37 at [1][5] is outside the vocabulary (0..36) and not -100',
    );
    expect(() => step.setBatchTargets(ids, [Array(seq).fill(-100), Array(seq).fill(-100)])).toThrow(
      'every target is -100',
    );
    step.destroy();
    lora.destroy();
    gw.destroy();
  });
});
