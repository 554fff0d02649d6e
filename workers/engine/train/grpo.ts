import { type Batch, padBatch } from '../../../core/dataset/batches';
import { IGNORE_INDEX, type TokenizedExample } from '../../../core/dataset/render';
import type { SamplingSettings } from '../../../core/generation/sampling';
import { groupAdvantages, grpoToken, sampleStd } from '../../../core/training/grpo';
import type { RlPrompt } from '../../../core/training/sequences';
import type { TrainSettings } from '../../../core/training/settings';
import { submitOps } from '../gpu/ops';
import { Decoder } from '../model/decoder';
import { generateRows, type RowRequest } from '../model/generate';
import { TransformerStep } from '../model/transformer';
import type { RewardSample, RewardSource } from './rewards';
import type { Objective, ObjectiveMetrics } from './trainer';

export interface GrpoOptions {
  settings: Pick<TrainSettings, 'groupSize' | 'maxCompletion' | 'temperature' | 'klBeta' | 'seed'>;
  /** Scores the completions; the objective owns it from here and ends it in `destroy`. */
  reward: RewardSource;
  /** Token ids that end a completion (EOS, end of turn); the one drawn is kept, so stopping is learned too. */
  stopIds: readonly number[];
  decode: (ids: number[]) => string;
  padId: number;
}

interface Completion {
  /** The completion's ids, its stop token included when one ended it. */
  ids: number[];
  text: string;
}

/**
 * Group-relative policy optimization (core/training/grpo.ts) as a trainer objective. Each micro-batch: every prompt
 * gets `groupSize` completions sampled from the policy as it is (the adapter on, no dropout) by a key-value-cache
 * decoder over the same weights, all of the micro-batch's completions decoded together as its rows (so each step
 * reads the weights once for all of them); the reward source scores them; each completion's advantage is its
 * reward against its group's; the policy's token log-probabilities come from the training step's forward (dropout
 * on, as the gradient sees them), the reference's from a forward-only step with the adapter off; and the backward
 * runs with each completion token's d loss / d CE as its loss weight. The loss is the token mean within the
 * micro-batch, micro-batches averaged.
 *
 * Sampling is seeded by the micro-batch's seed and the row, so a resumed run draws the same completions.
 */
export function grpoObjective(options: GrpoOptions): Objective<RlPrompt> {
  const { groupSize: G, maxCompletion, temperature, klBeta, seed } = options.settings;
  const sampling: SamplingSettings = { temperature, topK: 0, topP: 1, repetitionPenalty: 1 };
  /** A row per completion of a micro-batch; the trainer's tuning records it again with the variants it picks. */
  let decoder: Decoder | null = null;
  let reference: TransformerStep | null = null;
  let stepMetrics = { rewards: [] as number[], spreads: [] as number[], kl: 0, tokens: 0, lengths: 0, trained: 0 };

  /** A completion per request (a prompt and a seed), decoded together. */
  const sample = async (requests: RowRequest[]): Promise<Completion[]> => {
    if (!decoder) throw new Error('policy optimization needs its decoder: attach the objective first');
    const generations = await generateRows(decoder, requests, {
      ...sampling,
      maxNewTokens: maxCompletion,
      stopIds: options.stopIds,
    });
    return generations.map((g) => ({
      ids: g.stopId === undefined ? g.ids : [...g.ids, g.stopId],
      text: options.decode(g.ids),
    }));
  };

  const score = async (prompts: RlPrompt[], completions: Completion[], perPrompt: number) => {
    const samples: RewardSample[] = completions.map((c, i) => {
      const p = prompts[Math.floor(i / perPrompt)];
      return { prompt: p.prompt, completion: c.text, reference: p.reference, ids: [...p.ids, ...c.ids] };
    });
    const rewards = await options.reward.score(samples);
    if (rewards.length !== samples.length || rewards.some((r) => !Number.isFinite(r))) {
      throw new Error(`${options.reward.name} gave ${rewards.length} rewards for ${samples.length} completions`);
    }
    return rewards;
  };

  /** Each token's cross-entropy under a step's model, for the batch it was set to. */
  const tokenLosses = async (step: TransformerStep, device: GPUDevice, batch: Batch) => {
    step.setBatch(batch.tokens, batch.labels);
    step.setLossWeights(new Float32Array(step.tokens).fill(1));
    submitOps(device, step.forwardOps);
    return step.readTokenLosses();
  };

  return {
    rowsPerItem: G,
    // The batch the trainer lays out holds the prompts alone; the completions are sampled in `accumulate`.
    rows: (item) => Array.from({ length: G }, () => ({ ids: item.ids, labels: item.ids.map(() => IGNORE_INDEX) })),
    rowLength: (item) => item.ids.length + maxCompletion,
    attach(step, { kernels, weights, lora }) {
      if (!lora) throw new Error('policy optimization trains a LoRA adapter; full-parameter training is refused');
      const device = kernels.device;
      decoder = new Decoder(device, kernels, weights, lora, step.shape.seq, step.shape.batch);
      if (klBeta > 0) {
        reference = new TransformerStep(device, kernels, weights, null, step.shape, {
          full: false,
          forwardOnly: true,
        });
      }
      return null;
    },
    async accumulate(step, _prompts, items, context) {
      const { device } = context;
      const completions = await sample(
        items.flatMap((prompt, i) =>
          Array.from({ length: G }, (_, j) => ({ prompt: prompt.ids, seed: rowSeed(context.seed, i * G + j) })),
        ),
      );
      const rewards = await score(items, completions, G);
      const advantages = groupAdvantages(rewards, G);
      const rows: TokenizedExample[] = completions.map((c, r) => {
        const prompt = items[Math.floor(r / G)].ids;
        return { ids: [...prompt, ...c.ids], labels: [...prompt.map(() => IGNORE_INDEX), ...c.ids] };
      });
      // Rows past the items' (a short last batch) are padding alone, with no loss.
      const { batch: width, seq } = step.shape;
      while (rows.length < width) rows.push({ ids: [options.padId], labels: [IGNORE_INDEX] });
      const batch = padBatch(rows, seq, options.padId);
      const policy = await tokenLosses(step, device, batch);
      const base = reference ? await tokenLosses(reference, device, batch) : null;

      // Position t predicts token t + 1: its weight is that token's d loss / d CE.
      const counted = completions.reduce((n, c) => n + c.ids.length, 0);
      const scale = 1 / (counted * context.microBatches);
      const weights = new Float32Array(step.tokens);
      let loss = 0;
      let kl = 0;
      for (let r = 0; r < completions.length; r++) {
        for (let t = 0; t + 1 < seq; t++) {
          if (batch.labels[r][t + 1] === IGNORE_INDEX) continue;
          const at = r * seq + t;
          const token = grpoToken(advantages[r], -policy[at], base ? -base[at] : -policy[at], klBeta);
          weights[at] = token.weight * scale;
          loss += token.loss * scale;
          kl += token.kl;
        }
      }
      step.setLossWeights(weights);
      submitOps(device, step.backwardOps);

      for (let first = 0; first < rewards.length; first += G) {
        stepMetrics.spreads.push(sampleStd(rewards.slice(first, first + G)));
      }
      stepMetrics.rewards.push(...rewards);
      stepMetrics.kl += kl;
      stepMetrics.tokens += rows.slice(0, completions.length).reduce((n, row) => n + Math.min(row.ids.length, seq), 0);
      stepMetrics.lengths += counted;
      stepMetrics.trained += completions.length;
      return loss;
    },
    takeStepMetrics(): ObjectiveMetrics {
      const m = stepMetrics;
      stepMetrics = { rewards: [], spreads: [], kl: 0, tokens: 0, lengths: 0, trained: 0 };
      return {
        reward: mean(m.rewards),
        rewardStd: mean(m.spreads),
        kl: m.lengths > 0 ? m.kl / m.lengths : 0,
        completionLength: m.trained > 0 ? m.lengths / m.trained : 0,
        tokens: m.tokens,
      };
    },
    async evaluate(_step, _batch, items) {
      // One completion per held-out prompt, drawn with the same seeds every time so evaluations compare.
      const completions = await sample(items.map((p) => ({ prompt: p.ids, seed: rowSeed(seed, hashIds(p.ids)) })));
      const rewards = await score(items, completions, 1);
      return { count: items.length, reward: rewards.reduce((a, b) => a + b, 0) };
    },
    destroy() {
      decoder?.destroy();
      reference?.destroy();
      options.reward.destroy();
    },
  };
}

function rowSeed(seed: number, row: number): number {
  return (seed ^ Math.imul(row + 1, 0x9e3779b1)) >>> 0;
}

/** A prompt's own number, so its evaluation draws do not depend on where it sits in a batch. */
function hashIds(ids: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const id of ids) h = Math.imul(h ^ id, 0x01000193);
  return h >>> 0;
}

function mean(values: readonly number[]): number {
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}
