import type { Batch } from '../../../core/dataset/batches';
import { bradleyTerry, scoredPosition } from '../../../core/training/reward-model';
import type { PreferencePair } from '../../../core/training/sequences';
import { submitOps } from '../gpu/ops';
import { RewardHead } from '../model/reward-head';
import type { TransformerStep } from '../model/transformer';
import type { Objective } from './trainer';

/**
 * The reward model (core/training/reward-model.ts) as a trainer objective: the adapter plus a scalar head on the
 * same base model, each pair's chosen and rejected conversation scored at its last real token, the Bradley-Terry
 * loss's gradient written into the head's score gradients and carried back through the hidden states.
 */
export function rewardObjective(
  seed: number,
  padId: number,
  /** A trained head to continue from; nn.Linear's initialization when absent. */
  initialHead?: Float32Array<ArrayBuffer>,
): Objective<PreferencePair> {
  let head: RewardHead | null = null;
  const attached = () => {
    if (!head) throw new Error('the reward objective has no head: attach it to the step first');
    return head;
  };
  /** Scores of the batch's rows; rows past the items' pairs are filler and scored anywhere. */
  const score = async (step: TransformerStep, device: GPUDevice, batch: Batch, items: PreferencePair[]) => {
    const h = attached();
    const { batch: rows, seq } = step.shape;
    const positions = Array.from({ length: rows }, (_, row) => {
      const item = items[row >> 1];
      if (!item) return row * seq;
      const ids = row % 2 === 0 ? item.chosen.ids : item.rejected.ids;
      return row * seq + scoredPosition(ids, seq, padId);
    });
    step.setBatch(batch.tokens, batch.labels);
    h.setPositions(positions);
    submitOps(device, [...step.forwardOps, ...h.forwardOps]);
    const scores = await h.readScores();
    return items.map((_, i) => bradleyTerry(scores[2 * i], scores[2 * i + 1]));
  };
  return {
    rowsPerItem: 2,
    output: 'hidden',
    rows: (item) => [item.chosen, item.rejected],
    attach(step, { kernels }) {
      const weight = initialHead ?? RewardHead.initialWeight(step.hiddenSize, seed);
      head = new RewardHead(kernels.device, kernels, step, weight);
      return head;
    },
    async accumulate(step, batch, items, context) {
      const h = attached();
      const pairs = await score(step, context.device, batch, items);
      // Each pair weighs 1 / (pairs in the step); filler rows carry no gradient.
      const grads = new Float32Array(step.shape.batch);
      pairs.forEach((pair, i) => {
        grads[2 * i] = pair.dChosen / context.items;
        grads[2 * i + 1] = -pair.dChosen / context.items;
      });
      h.setScoreGrads(grads);
      submitOps(context.device, [...h.backwardOps, ...step.backwardOps]);
      return pairs.reduce((sum, pair) => sum + pair.loss, 0) / context.items;
    },
    async evaluate(step, batch, items, device) {
      const pairs = await score(step, device, batch, items);
      return {
        sum: pairs.reduce((sum, pair) => sum + pair.loss, 0),
        count: pairs.length,
        correct: pairs.filter((pair) => pair.correct).length,
      };
    },
  };
}
