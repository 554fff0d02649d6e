import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../../workers/engine/reference/random-model';
import { learningRate, warmupSteps } from './schedule';
import { defaultSettings, defaultsExplained, methodForFormat, settingsProblems, withFull } from './settings';

describe('learning-rate schedules', () => {
  it('climb through the warm-up, then hold, fall linearly, or follow a cosine to zero', () => {
    expect([0, 1, 2].map((s) => learningRate(1, 'constant', 3, s, 10))).toEqual([0.25, 0.5, 0.75]);
    expect(learningRate(1, 'constant', 3, 9, 10)).toBe(1);
    expect(learningRate(1, 'linear', 0, 5, 10)).toBe(0.5);
    expect(learningRate(1, 'linear', 0, 10, 10)).toBe(0);
    expect(learningRate(1, 'cosine', 0, 0, 10)).toBe(1);
    expect(learningRate(1, 'cosine', 0, 5, 10)).toBeCloseTo(0.5);
    expect(learningRate(1, 'cosine', 2, 6, 10)).toBeCloseTo(0.5);
    expect(warmupSteps(0.1, 50)).toBe(5);
    expect(warmupSteps(7, 50)).toBe(7);
    expect(warmupSteps(70, 50)).toBe(50);
    // A continued adapter's fresh optimizer warms up over at least 3 steps or a tenth of the run.
    expect(warmupSteps(0.05, 4, true)).toBe(3);
    expect(warmupSteps(0.05, 2, true)).toBe(2);
    expect(warmupSteps(0.05, 100, true)).toBe(10);
    expect(warmupSteps(20, 100, true)).toBe(20);
  });
});

describe('training settings', () => {
  const config = tinyConfig();
  it('defaults pass for every method on its own data, and the learning rate shrinks as models grow', () => {
    const s = { ...defaultSettings('sft', 1e6), seqLen: 64 };
    expect(settingsProblems(s, { config, format: 'messages', sequences: 10 })).toEqual([]);
    expect(defaultSettings('sft', 135e6).lr).toBeLessThan(s.lr);
    expect(defaultSettings('sft', 1.2e9).lr).toBeLessThan(defaultSettings('sft', 135e6).lr);
    expect(defaultSettings('dpo', 135e6).lr).toBeLessThan(defaultSettings('sft', 135e6).lr);
  });

  it('trains every weight at a far smaller rate, switched with the choice unless the rate was changed', () => {
    const lora = defaultSettings('sft', 1e6);
    const full = withFull(lora, true, 1e6);
    expect(full).toEqual(defaultSettings('sft', 1e6, true));
    expect(full.lr).toBeLessThanOrEqual(lora.lr / 10);
    expect(defaultSettings('sft', 135e6, true).lr).toBeLessThan(defaultSettings('sft', 135e6).lr / 10);
    expect(withFull(full, false, 1e6)).toEqual(lora);
    const chosen = { ...lora, lr: 0.005 };
    expect(withFull(chosen, true, 1e6)).toEqual({ ...chosen, full: true });
  });

  it('refuses every bad value and a method given data it cannot train on, naming each', () => {
    const s = {
      ...defaultSettings('cpt', 1e6),
      loraDropout: 1,
      targets: ['q_proj', 'wq'] as never,
      schedule: 'step' as never,
      batchSize: 1.5,
      gradAccum: 0,
      seqLen: 65,
      maxGradNorm: -1,
      evalEvery: -5,
    };
    expect(settingsProblems(s, { config, format: 'preference', sequences: 0 })).toEqual([
      'LoRA dropout must be in [0, 1), not 1',
      'unknown target modules wq; the targets are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj',
      'unknown schedule "step"; the schedules are constant, linear, cosine',
      'the batch size must be a whole number of at least 1, not 1.5',
      'gradient accumulation must be a whole number of at least 1, not 0',
      "the sequence length 65 is past the model's max_position_embeddings, 64",
      'gradient clipping must be 0 (off) or more, not -1',
      'evaluation every N steps needs a whole N of 0 or more, not -5',
      'Continued pretraining (raw text) trains on text data; this dataset is preference',
      'the dataset has nothing to train on',
    ]);
  });
});

describe('defaultsExplained', () => {
  it('says why each default is what it is, with the values the defaults have', () => {
    const tiny = defaultsExplained('dpo', 1e6);
    expect(tiny.join(' ')).toContain('Learning rate 0.001 for a tiny model, a tenth of the supervised rate');
    const small = defaultsExplained('sft', 135e6);
    expect(small.join(' ')).toContain('Learning rate 0.0003 for a model under 600M parameters');
    expect(small[0]).toContain('LoRA rank 16 (alpha 32)');
    const full = defaultsExplained('sft', 1e6, true).join(' ');
    expect(full).toContain('Every weight trained');
    expect(full).toContain('Learning rate 0.0003 for every weight of a tiny model');
  });
});

describe('methodForFormat', () => {
  it('picks the method each data shape trains with, DPO before the reward model for pairs', () => {
    expect(methodForFormat('text')).toBe('cpt');
    expect(methodForFormat('messages')).toBe('sft');
    expect(methodForFormat('alpaca')).toBe('sft');
    expect(methodForFormat('preference')).toBe('dpo');
    expect(methodForFormat('rl_prompts')).toBe('grpo');
  });
});
