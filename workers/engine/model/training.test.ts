import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../core/model-config';
import { estimateTrainingMemory, parameterCount } from '../../../core/model-memory';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { readConcatenated } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { adamwCpu } from '../kernels/adamw.cpu';
import { randomLora, randomWeights, tinyConfig } from '../reference/random-model';
import { referenceForwardBackward } from '../reference/transformer.cpu';
import { CPU_KERNELS, EngineKernels } from './kernels';
import { everyLayer, GpuLora, peftInit } from './lora';
import type { MatmulTile } from './matmul-tuner';
import { AdamW, weightParamGroups } from './optimizer';
import { TransformerStep } from './transformer';
import { GpuWeights } from './weights';

const gpu = setupTestGpu();
const settings = { lr: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 0.5 };

describe('LoRA training steps on the GPU', () => {
  it('three steps of forward, backward and clipped AdamW follow the float64 reference', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const weights = randomWeights(config, 3);
    const ref = randomLora(config, ['q_proj', 'v_proj', 'down_proj'], 2, 4, false, 4);
    const tokens = [
      [1, 5, 9, 2, 7, 3],
      [4, 4, 8, 1, 0, 6],
    ];
    const kernels = new EngineKernels(device);
    const gw = await uploadWeights(device, config, weights);
    const lora = GpuLora.create(
      device,
      config,
      {
        r: 2,
        loraAlpha: 4,
        useRslora: false,
        loraDropout: 0,
        modules: everyLayer(config, ['q_proj', 'v_proj', 'down_proj']),
      },
      fromReference(ref),
    );
    const step = new TransformerStep(device, kernels, gw, lora, { batch: 2, seq: 6 }, { full: false });
    const optimizer = new AdamW(device, kernels, [{ param: lora.params, grad: lora.grads, n: lora.length }], settings);
    step.setBatch(tokens);

    const keys = [...ref.modules.keys()];
    const refParams = keys.flatMap((k) => [ref.modules.get(k)?.A, ref.modules.get(k)?.B] as Float64Array[]);
    const m = refParams.map((p) => new Float64Array(p.length));
    const v = refParams.map((p) => new Float64Array(p.length));
    const losses: number[] = [];
    for (let t = 1; t <= 3; t++) {
      const r = referenceForwardBackward(config, weights, ref, tokens);
      const grads = keys.flatMap((k) => [r.loraGrads.get(k)?.A, r.loraGrads.get(k)?.B] as Float64Array[]);
      const norm = adamwCpu(refParams, grads, m, v, settings, t, settings.maxGradNorm);

      optimizer.prepareStep();
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops]);
      const loss = await step.readLoss();
      expect(Math.abs(loss - r.loss) / r.loss).toBeLessThan(1e-5);
      expect(await optimizer.readGradNorm()).toBeCloseTo(norm, 4);
      losses.push(loss);
    }
    const params = await lora.readParams(device);
    for (const k of keys) {
      expect(maxRelativeError(params.get(k)?.A ?? [], ref.modules.get(k)?.A ?? []), k).toBeLessThan(1e-4);
      expect(maxRelativeError(params.get(k)?.B ?? [], ref.modules.get(k)?.B ?? []), k).toBeLessThan(1e-4);
    }
    expect(losses[2]).toBeLessThan(losses[0]);
  });

  it('PEFT initialization leaves the model unchanged until the first step, then training lowers the loss', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const weights = randomWeights(config, 5);
    const tokens = [[3, 1, 4, 1, 5, 9, 2, 6]];
    const kernels = new EngineKernels(device);
    const gw = await uploadWeights(device, config, weights);
    const lora = GpuLora.create(
      device,
      config,
      { r: 4, loraAlpha: 8, useRslora: false, loraDropout: 0, modules: everyLayer(config, PROJECTIONS) },
      peftInit(7),
    );
    const step = new TransformerStep(device, kernels, gw, lora, { batch: 1, seq: 8 }, { full: false });
    const optimizer = new AdamW(device, kernels, [{ param: lora.params, grad: lora.grads, n: lora.length }], {
      ...settings,
      lr: 0.05,
      maxGradNorm: 1,
    });
    step.setBatch(tokens);
    const losses: number[] = [];
    for (let t = 0; t < 8; t++) {
      optimizer.prepareStep();
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops]);
      losses.push(await step.readLoss());
    }
    expect(Math.abs(losses[0] - referenceForwardBackward(config, weights, null, tokens).loss)).toBeLessThan(1e-5);
    const params = await lora.readParams(device);
    const a = params.get('0.q_proj')?.A ?? new Float32Array();
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(config.hiddenSize) + 0.4);
    expect(losses[7]).toBeLessThan(losses[0] * 0.9);
  });
});

describe('matmul variants tuned per shape', () => {
  const splitFallback: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 4 };
  for (const fallback of [undefined, splitFallback]) {
    it(`a plan recorded after tuning mixes variants and still matches the reference (fallback ${fallback ? 'split-K 4' : 'default'})`, async () => {
      const { device } = gpu();
      const config = tinyConfig({ numKvHeads: 1 });
      const weights = randomWeights(config, 9);
      const ref = randomLora(config, [...PROJECTIONS], 2, 2, false, 10);
      const tokens = [[5, 3, 9, 11, 2, 8, 30, 1, 4]];
      const candidates: MatmulTile[] = [
        { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
        { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
        { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 2 },
      ];
      const kernels = new EngineKernels(device, {
        ...CPU_KERNELS,
        matmul: fallback ?? CPU_KERNELS.matmul,
        tune: candidates,
      });
      const gw = await uploadWeights(device, config, weights);
      const lora = GpuLora.create(
        device,
        config,
        { r: 2, loraAlpha: 2, useRslora: false, loraDropout: 0, modules: everyLayer(config, PROJECTIONS) },
        fromReference(ref),
      );
      // Recording a step tells the tuner its products; tuning records every step alive again on the choices: the
      // run's, and a forward-only step of the same shape made before tuning too (a KL reference's).
      const step = new TransformerStep(device, kernels, gw, lora, { batch: 1, seq: 9 }, { full: true });
      const reference = new TransformerStep(device, kernels, gw, null, step.shape, { full: false, forwardOnly: true });
      const matmulLabels = (plan = step) =>
        new Set(
          [...plan.forwardOps, ...plan.backwardOps].flatMap((op) =>
            op.kind === 'dispatch' && op.label.startsWith('matmul') ? [op.label] : [],
          ),
        );
      const untuned = matmulLabels();
      const referenceUntuned = matmulLabels(reference);
      expect(await kernels.tuneMatmuls()).toBe(true);
      expect(kernels.matmuls.choices().length).toBeGreaterThan(10);
      expect(new Set(kernels.matmuls.choices().map((c) => c.shape)).size).toBe(kernels.matmuls.choices().length);

      expect(matmulLabels()).not.toEqual(untuned);
      expect(matmulLabels(reference)).not.toEqual(referenceUntuned);
      reference.destroy();
      // The default fallback (register 8x8 blocks) is not a candidate: no product keeps it.
      if (!fallback) expect([...matmulLabels()].some((label) => label.includes('8x8_8x8'))).toBe(false);
      step.setBatch(tokens);
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps]);
      const r = referenceForwardBackward(config, weights, ref, tokens, undefined, { full: true });
      expect(Math.abs((await step.readLoss()) - r.loss) / r.loss).toBeLessThan(1e-5);
      const grads = await lora.readGradients(device);
      for (const [key, g] of r.loraGrads) {
        expect(maxRelativeError(grads.get(key)?.A ?? [], g.A), key).toBeLessThan(1e-4);
        expect(maxRelativeError(grads.get(key)?.B ?? [], g.B), key).toBeLessThan(1e-4);
      }
    });
  }
});

describe('full-parameter training steps', () => {
  it('two steps of clipped AdamW on every base weight follow the float64 reference', async () => {
    const { device } = gpu();
    const config = tinyConfig({ tieWordEmbeddings: false });
    const weights = randomWeights(config, 13);
    const tokens = [
      [2, 7, 1, 8, 2, 8],
      [3, 1, 4, 1, 5, 9],
    ];
    const kernels = new EngineKernels(device);
    const gw = await uploadWeights(device, config, weights, {
      vocabChunkBytes: 10 * 24 * 4,
    });
    const step = new TransformerStep(device, kernels, gw, null, { batch: 2, seq: 6 }, { full: true });
    const grads = step.weightGrads;
    if (!grads) throw new Error('full mode has weight gradients');
    const optimizer = new AdamW(device, kernels, weightParamGroups(gw.byKey, grads), settings);
    step.setBatch(tokens);

    const keys = [...weights.keys()];
    const refParams = keys.map((k) => weights.get(k) as Float64Array);
    const m = refParams.map((p) => new Float64Array(p.length));
    const v = refParams.map((p) => new Float64Array(p.length));
    for (let t = 1; t <= 2; t++) {
      const r = referenceForwardBackward(config, weights, null, tokens, undefined, { full: true });
      const norm = adamwCpu(
        refParams,
        keys.map((k) => r.weightGrads.get(k) as Float64Array),
        m,
        v,
        settings,
        t,
        settings.maxGradNorm,
      );
      optimizer.prepareStep();
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops]);
      expect(Math.abs((await step.readLoss()) - r.loss) / r.loss).toBeLessThan(1e-5);
      expect(await optimizer.readGradNorm()).toBeCloseTo(norm, 4);
    }
    for (const key of keys) {
      const expected = weights.get(key) ?? new Float64Array();
      const got = await readConcatenated(device, gw.byKey.get(key) ?? [], expected.length);
      expect(maxRelativeError(got, expected), key).toBeLessThan(1e-4);
    }
  });
});

describe('estimateTrainingMemory', () => {
  it('is within 25% of what the engine allocates for a LoRA step', async () => {
    const { device } = gpu();
    const config = tinyConfig({ numLayers: 3, vocabSize: 300, intermediateSize: 64 });
    const weights = randomWeights(config, 1);
    const kernels = new EngineKernels(device);
    const gw = await uploadWeights(device, config, weights);
    const lora = GpuLora.create(
      device,
      config,
      { r: 4, loraAlpha: 8, useRslora: false, loraDropout: 0, modules: everyLayer(config, PROJECTIONS) },
      peftInit(1),
    );
    const optimizer = new AdamW(device, kernels, [{ param: lora.params, grad: lora.grads, n: lora.length }], settings);
    const fixed = gw.byteLength + optimizer.byteLength + lora.length * 8;
    const allocated: Record<string, number> = {};
    for (const recompute of [false, true]) {
      const step = new TransformerStep(device, kernels, gw, lora, { batch: 2, seq: 32 }, { full: false, recompute });
      const actual = fixed + step.byteLength;
      const estimate = estimateTrainingMemory(config, { batch: 2, seq: 32, rank: 4, recompute });
      expect(estimate.weights).toBe(gw.byteLength);
      expect(estimate.total / actual, `recompute ${recompute}`).toBeGreaterThan(0.75);
      expect(estimate.total / actual, `recompute ${recompute}`).toBeLessThan(1.25);
      allocated[String(recompute)] = step.byteLength;
      step.destroy();
    }
    // Recomputing keeps one layer's activations instead of three.
    expect(allocated.true).toBeLessThan(0.8 * allocated.false);
    // Policy optimization's KL reference, a forward-only step of the base model: one layer's set, no backward.
    const reference = new TransformerStep(
      device,
      kernels,
      gw,
      null,
      { batch: 2, seq: 32 },
      { full: false, forwardOnly: true },
    );
    const shape = { batch: 2, seq: 32, rank: 4 };
    const extra =
      estimateTrainingMemory(config, { ...shape, reference: true }).activations -
      estimateTrainingMemory(config, shape).activations;
    expect(extra / reference.byteLength).toBeGreaterThan(0.75);
    expect(extra / reference.byteLength).toBeLessThan(1.25);
    reference.destroy();
    expect(parameterCount(config) * 4).toBe(gw.byteLength);
    optimizer.destroy();
    lora.destroy();
    gw.destroy();
  });

  it("counts fp16 matrices for LoRA runs, and every weight's gradients and moments for full training", async () => {
    const { device } = gpu();
    const config = tinyConfig({ numLayers: 3, vocabSize: 300, intermediateSize: 64 });
    const weights = randomWeights(config, 1);
    const source = (key: string) => Float32Array.from(weights.get(key) ?? []);
    const kernels = new EngineKernels(device);
    const half = await GpuWeights.upload(device, config, source, { halfMatrices: true });
    const halfEstimate = estimateTrainingMemory(config, { halfMatrices: true });
    expect(Math.abs(halfEstimate.weights - half.byteLength) / half.byteLength).toBeLessThan(0.01);
    half.destroy();

    const gw = await GpuWeights.upload(device, config, source);
    const step = new TransformerStep(device, kernels, gw, null, { batch: 2, seq: 32 }, { full: true });
    const groups = weightParamGroups(gw.byKey, step.weightGrads ?? new Map());
    const optimizer = new AdamW(device, kernels, groups, settings);
    const actual = gw.byteLength + step.byteLength + optimizer.byteLength;
    const estimate = estimateTrainingMemory(config, { batch: 2, seq: 32, full: true });
    expect(estimate.total / actual).toBeGreaterThan(0.75);
    expect(estimate.total / actual).toBeLessThan(1.25);
    step.destroy();
    optimizer.destroy();
    gw.destroy();
  });
});
