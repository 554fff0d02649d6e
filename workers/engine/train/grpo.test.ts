import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../core/random';
import type { RlPrompt } from '../../../core/training/sequences';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { expectResumeToMatch, randomGpuWeights, tinyRunSettings } from '../../../tests/helpers/trainer-runs';
import { EngineKernels } from '../model/kernels';
import { tinyConfig } from '../reference/random-model';
import { grpoObjective } from './grpo';
import type { RewardSource } from './rewards';
import { runTraining, type StepMetrics, Trainer } from './trainer';

const gpu = setupTestGpu();
const config = tinyConfig();
/** Tokens the reward pays for: about a fifth of the vocabulary, so the first groups already differ. */
const PAID = 8;

function prompts(count: number, seed: number): RlPrompt[] {
  const next = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => ({
    ids: Array.from({ length: 2 + Math.floor(next() * 3) }, () => 1 + Math.floor(next() * 30)),
    prompt: `prompt ${i}`,
  }));
}

/** The share of a completion's tokens below PAID: a reward the random model earns by chance at first. */
function targetReward(): RewardSource & { calls: number } {
  return {
    name: 'target share',
    calls: 0,
    async score(samples) {
      this.calls++;
      return samples.map((s) => {
        const completion = s.ids.slice(-5);
        return completion.filter((id) => id < PAID).length / completion.length;
      });
    },
    destroy() {},
  };
}

const settings = tinyRunSettings('grpo', {
  lr: 0.05,
  gradAccum: 1,
  groupSize: 4,
  maxCompletion: 5,
  maxSteps: 10,
});

async function setup() {
  const { device } = gpu();
  const weights = await randomGpuWeights(device, config, 3);
  return { device, kernels: new EngineKernels(device), weights };
}

describe('policy optimization (GRPO) on the engine', () => {
  it('raises the reward of sampled completions, with a KL to the base model that starts at 0', async () => {
    const { device, kernels, weights } = await setup();
    const reward = targetReward();
    const objective = grpoObjective({ settings, reward, stopIds: [], decode: (ids) => ids.join(' '), padId: 0 });
    const data = { train: prompts(6, 1), validation: prompts(3, 2), padId: 0 };
    const trainer = new Trainer(device, kernels, weights, settings, data, objective);
    const before = await trainer.evaluate();
    const steps: StepMetrics[] = [];
    await runTraining(trainer, { onStep: (m) => steps.push(m) });
    expect(steps[0].kl).toBe(0);
    expect(steps.at(-1)?.kl).toBeGreaterThan(0);
    expect(steps[0].completionLength).toBe(5);
    const early = (steps[0].reward ?? 0) + (steps[1].reward ?? 0);
    const late = (steps.at(-1)?.reward ?? 0) + (steps.at(-2)?.reward ?? 0);
    expect(late).toBeGreaterThan(early + 0.5);
    const after = await trainer.evaluate();
    expect(after?.loss).toBeNull();
    expect(after?.reward).toBeGreaterThan((before?.reward ?? 0) + 0.3);
    trainer.destroy();
    weights.destroy();
  });

  it('resumes to the same adapter as an uninterrupted run: the completions are drawn from seeded streams', async () => {
    const { device, kernels, weights } = await setup();
    const make = () =>
      new Trainer(
        device,
        kernels,
        weights,
        { ...settings, maxSteps: 3 },
        { train: prompts(5, 3), validation: [], padId: 0 },
        grpoObjective({ settings, reward: targetReward(), stopIds: [], decode: String, padId: 0 }),
      );
    await expectResumeToMatch(device, make, 1);
    weights.destroy();
  });
});
