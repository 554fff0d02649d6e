import { describe, expect, it } from 'vitest';
import type { TokenizedExample } from '../../../core/dataset/render';
import { mulberry32 } from '../../../core/random';
import { defaultSettings, type TrainSettings } from '../../../core/training/settings';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { uploadWeights } from '../../../tests/helpers/gpu-model';
import { readFloat32 } from '../gpu/buffers';
import { CPU_KERNELS, EngineKernels } from '../model/kernels';
import type { MatmulTile } from '../model/matmul-tuner';
import { randomWeights, tinyConfig } from '../reference/random-model';
import { runTraining, Trainer, TrainingDivergedError } from './trainer';

const gpu = setupTestGpu();
const config = tinyConfig();

/** Short "conversations": a prompt without loss and an answer that is a fixed function of the prompt. */
function task(count: number, seed: number): TokenizedExample[] {
  const next = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const prompt = Array.from({ length: 3 + Math.floor(next() * 4) }, () => 1 + Math.floor(next() * 30));
    const answer = prompt.map((id) => (id * 7) % 31);
    return { ids: [...prompt, ...answer], labels: [...prompt.map(() => -100), ...answer] };
  });
}

function settings(overrides: Partial<TrainSettings> = {}): TrainSettings {
  return {
    ...defaultSettings('sft', 1000),
    loraR: 4,
    loraAlpha: 8,
    lr: 0.02,
    batchSize: 3,
    gradAccum: 2,
    seqLen: 16,
    evalEvery: 0,
    checkpointEvery: 0,
    checkpointMinutes: 0,
    maxSteps: 8,
    ...overrides,
  };
}

async function upload(device: GPUDevice, poison = false) {
  const weights = randomWeights(config, 5);
  if (poison) (weights.get('model.embed_tokens.weight') as Float64Array).fill(Number.NaN);
  return uploadWeights(device, config, weights);
}

describe('the next-token trainer', () => {
  it('lowers the training and validation loss of a LoRA adapter on a fixed task', async () => {
    const { device } = gpu();
    const kernels = new EngineKernels(device);
    const weights = await upload(device);
    const trainer = new Trainer(device, kernels, weights, settings({ maxSteps: 30, schedule: 'constant' }), {
      train: task(24, 1),
      validation: task(6, 9),
      padId: 0,
    });
    const before = await trainer.evaluate();
    const losses: number[] = [];
    const evals: number[] = [];
    expect(
      await runTraining(trainer, {
        onStep: (m) => losses.push(m.loss),
        onEval: (_, v) => evals.push(v.loss ?? Number.NaN),
      }),
    ).toBe('finished');
    expect(losses).toHaveLength(30);
    expect(losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(0.8 * losses[0]);
    expect(evals.at(-1)).toBeLessThan(0.8 * (before?.loss ?? 0));
    trainer.destroy();
    weights.destroy();
  });

  it('tunes its matmuls before the first step where the kernels ask it to, and trains the same', async () => {
    const { device } = gpu();
    const weights = await upload(device);
    const data = { train: task(10, 3), validation: [], padId: 0 };
    // Tuning between two variants that differ from the untuned one, so the recorded plan must change.
    const split: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 2 };
    const tiled: MatmulTile = { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 };
    const losses = async (kernels: EngineKernels) => {
      const trainer = new Trainer(device, kernels, weights, settings({ maxSteps: 3 }), data);
      await trainer.prepare();
      const seen = [];
      for (let i = 0; i < 3; i++) seen.push((await trainer.trainStep()).loss);
      trainer.destroy();
      return seen;
    };
    const untuned = new EngineKernels(device, CPU_KERNELS);
    const tuning = new EngineKernels(device, { ...CPU_KERNELS, tune: [split, tiled], matmulSets: true });
    const expected = await losses(untuned);
    const got = await losses(tuning);
    expect(tuning.matmuls.choices().length).toBeGreaterThan(0);
    // Products and sets of products alike (q/k/v and gate/up, o_proj and down_proj as sums of one product onto the
    // residual stream, and the four input gradients): a set may also run separately.
    const choices = tuning.matmuls.choices();
    expect(choices.every((c) => c.tile === split || c.tile === tiled || c.tile === 'separate')).toBe(true);
    expect(choices.filter((c) => /^(each|sum) /.test(c.shape))).toHaveLength(8);
    for (let i = 0; i < 3; i++) expect(Math.abs(got[i] - expected[i])).toBeLessThan(1e-4 * expected[i]);
    weights.destroy();
  });

  it('resumes from a checkpoint to exactly the adapter an uninterrupted run makes', async () => {
    const { device } = gpu();
    const kernels = new EngineKernels(device);
    const weights = await upload(device);
    const data = { train: task(10, 2), validation: [], padId: 0 };
    const s = settings({ loraDropout: 0.1, schedule: 'cosine', warmup: 2 });
    const adapter = async (t: Trainer) => readFloat32(device, t.lora?.params as GPUBuffer);

    const whole = new Trainer(device, kernels, weights, s, data);
    await runTraining(whole);
    const expected = await adapter(whole);
    whole.destroy();

    const first = new Trainer(device, kernels, weights, s, data);
    let steps = 0;
    let saved: Awaited<ReturnType<Trainer['checkpoint']>> | null = null;
    const outcome = await runTraining(first, {
      onStep: () => steps++,
      shouldStop: () => steps === 3,
      onCheckpoint: async (c) => {
        saved = c;
      },
    });
    expect(outcome).toBe('stopped');
    first.destroy();
    // A round trip through JSON, as storage would make it.
    const stored = JSON.parse(JSON.stringify(saved, (_, v) => (v instanceof Float32Array ? [...v] : v)));
    for (const g of stored.optimizer.groups) for (const k of ['param', 'm', 'v']) g[k] = Float32Array.from(g[k]);

    const second = new Trainer(device, kernels, weights, s, data);
    second.restore(stored);
    expect(second.stepsCompleted).toBe(3);
    await runTraining(second);
    expect(second.stepsCompleted).toBe(8);
    expect(await adapter(second)).toEqual(expected);
    expect(() => new Trainer(device, kernels, weights, { ...s, lr: 0.5 }, data).restore(stored)).toThrow(
      'the checkpoint was made with other settings (lr)',
    );
    second.destroy();
    weights.destroy();
  });

  it('checkpoints every N steps or N minutes, whichever comes first, and always at the end', async () => {
    const { device } = gpu();
    const kernels = new EngineKernels(device);
    const weights = await upload(device);
    const data = { train: task(10, 2), validation: [], padId: 0 };
    const checkpoints = async (s: TrainSettings) => {
      const trainer = new Trainer(device, kernels, weights, s, data);
      const steps: number[] = [];
      await runTraining(trainer, { onCheckpoint: async (c) => void steps.push(c.step) });
      trainer.destroy();
      return steps;
    };
    expect(await checkpoints(settings({ checkpointEvery: 3 }))).toEqual([3, 6, 8]);
    expect(await checkpoints(settings({ checkpointEvery: 0 }))).toEqual([8]);
    // A minute's worth of a step this small: every step is past the interval.
    expect(await checkpoints(settings({ checkpointMinutes: 1e-9 }))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    weights.destroy();
  });

  it('trains every weight in full-parameter mode', async () => {
    const { device } = gpu();
    const weights = await upload(device);
    const trainer = new Trainer(device, new EngineKernels(device), weights, settings({ full: true, lr: 0.01 }), {
      train: task(12, 3),
      validation: [],
      padId: 0,
    });
    expect(trainer.lora).toBeNull();
    const before = await readFloat32(device, weights.finalNorm);
    const losses: number[] = [];
    await runTraining(trainer, { onStep: (m) => losses.push(m.loss) });
    expect(await readFloat32(device, weights.finalNorm)).not.toEqual(before);
    expect(losses.at(-1)).toBeLessThan(losses[0]);
    trainer.destroy();
    weights.destroy();
  });

  it('stops with a clear error when the loss is not a number', async () => {
    const { device } = gpu();
    const weights = await upload(device, true);
    const trainer = new Trainer(device, new EngineKernels(device), weights, settings(), {
      train: task(6, 4),
      validation: [],
      padId: 0,
    });
    const error = await trainer.trainStep().catch((e) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect(error.message).toBe(
      'training diverged at step 1: the loss is NaN; the run stopped, and its last checkpoint is kept',
    );
    trainer.destroy();
    weights.destroy();
  });
});
