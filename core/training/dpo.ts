/**
 * Direct preference optimization (Rafailov et al., 2023), the sigmoid loss as TRL computes it, per pair:
 *   z = beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)))
 *   loss = -log sigmoid(z) = softplus(-z)
 * with log pi(answer) the sum of the answer tokens' log-probabilities under the policy (the adapter on) and ref
 * the same under the reference model (the adapter off). The engine computes each answer's token cross-entropies,
 * so log pi = -sum(CE), and the gradient reaches the tokens as per-token loss weights:
 *   d loss / d CE(chosen token) = +beta * sigmoid(-z),  d loss / d CE(rejected token) = -beta * sigmoid(-z).
 */
import { sigmoid, softplus } from './logistic';

export interface PairLogProbs {
  policyChosen: number;
  policyRejected: number;
  referenceChosen: number;
  referenceRejected: number;
}

export interface DpoPair {
  loss: number;
  /** The implicit reward margin beta * (...) = z; the pair is ranked right when it is positive. */
  margin: number;
  /** d loss / d CE of each chosen answer token; the rejected tokens get its negative. */
  tokenWeight: number;
}

export function dpoPair(p: PairLogProbs, beta: number): DpoPair {
  const z = beta * (p.policyChosen - p.referenceChosen - (p.policyRejected - p.referenceRejected));
  return { loss: softplus(-z), margin: z, tokenWeight: beta * sigmoid(-z) };
}
