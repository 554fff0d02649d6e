import type { Batch } from '../../../core/dataset/batches';
import { dpoPair } from '../../../core/training/dpo';
import type { PreferencePair } from '../../../core/training/sequences';
import { submitOps } from '../gpu/ops';
import type { TransformerStep } from '../model/transformer';
import type { Objective } from './trainer';

/**
 * Each row's answer log-probability under the model as it is now: the forward with every counted position
 * weighted 1 leaves each token's cross-entropy, and log p(answer) = -(their sum).
 */
async function answerLogProbs(step: TransformerStep, device: GPUDevice, batch: Batch): Promise<number[]> {
  step.setBatch(batch.tokens, batch.labels);
  step.setLossWeights(new Float32Array(step.tokens).fill(1));
  submitOps(device, step.forwardOps);
  const losses = await step.readTokenLosses();
  const { seq } = step.shape;
  return batch.tokens.map((_, row) => {
    let sum = 0;
    for (let t = row * seq; t < (row + 1) * seq; t++) sum += losses[t];
    return -sum;
  });
}

/**
 * DPO (core/training/dpo.ts) as a trainer objective. The reference model is the same weights with the adapter off;
 * its log-probabilities are taken once, in `prepare`, while the fresh adapter's B is still zero (so the adapted model
 * is exactly the base model), and kept per pair: no second model in memory, no second forward per step.
 */
export function dpoObjective(beta: number): Objective<PreferencePair> {
  const reference = new Map<PreferencePair, { chosen: number; rejected: number }>();
  const pairsOf = (logProbs: number[], items: PreferencePair[]) =>
    items.map((item, i) => {
      const ref = reference.get(item);
      if (!ref) throw new Error('a preference pair has no reference log-probabilities: prepare the trainer first');
      return dpoPair(
        {
          policyChosen: logProbs[2 * i],
          policyRejected: logProbs[2 * i + 1],
          referenceChosen: ref.chosen,
          referenceRejected: ref.rejected,
        },
        beta,
      );
    });
  return {
    rowsPerItem: 2,
    rows: (item) => [item.chosen, item.rejected],
    async prepare(step, device, data, batchOf) {
      step.setDropoutSeed(null);
      const all = [...data.train, ...data.validation];
      const perBatch = step.shape.batch / 2;
      for (let first = 0; first < all.length; first += perBatch) {
        const items = all.slice(first, first + perBatch);
        const logProbs = await answerLogProbs(step, device, batchOf(items));
        for (const [i, item] of items.entries()) {
          reference.set(item, { chosen: logProbs[2 * i], rejected: logProbs[2 * i + 1] });
        }
      }
    },
    async accumulate(step, batch, items, context) {
      const pairs = pairsOf(await answerLogProbs(step, context.device, batch), items);
      // d loss / d CE: +w on the chosen answer's tokens, -w on the rejected one's, each pair 1 / (pairs in the step).
      const { seq } = step.shape;
      const weights = new Float32Array(step.tokens);
      pairs.forEach((pair, i) => {
        weights.fill(pair.tokenWeight / context.items, 2 * i * seq, (2 * i + 1) * seq);
        weights.fill(-pair.tokenWeight / context.items, (2 * i + 1) * seq, (2 * i + 2) * seq);
      });
      step.setLossWeights(weights);
      submitOps(context.device, step.backwardOps);
      return pairs.reduce((sum, pair) => sum + pair.loss, 0) / context.items;
    },
    async evaluate(step, batch, items, device) {
      const pairs = pairsOf(await answerLogProbs(step, device, batch), items);
      return {
        sum: pairs.reduce((sum, pair) => sum + pair.loss, 0),
        count: pairs.length,
        correct: pairs.filter((pair) => pair.margin > 0).length,
      };
    },
  };
}
