/**
 * A reward model's loss on a preference pair (Bradley-Terry, as TRL's RewardTrainer computes it): the probability
 * that the chosen answer is preferred is sigmoid(r_chosen - r_rejected), and
 *   loss = -log sigmoid(r_chosen - r_rejected) = softplus(r_rejected - r_chosen)
 *   d loss / d r_chosen = -sigmoid(r_rejected - r_chosen) = -(d loss / d r_rejected)
 */
import { sigmoid, softplus } from './logistic';

export interface RewardPair {
  loss: number;
  /** d loss / d r_chosen; the rejected score's gradient is its negative. */
  dChosen: number;
  /** Ranked right: the chosen answer scores higher. */
  correct: boolean;
}

export function bradleyTerry(chosen: number, rejected: number): RewardPair {
  const margin = chosen - rejected;
  return { loss: softplus(-margin), dChosen: -sigmoid(-margin), correct: margin > 0 };
}

/**
 * Where a sequence is scored: its last token that is not the pad token, as Hugging Face's
 * *ForSequenceClassification reads it (so a reward adapter scores the same there, with the same pad_token_id).
 * A sequence of pad tokens only is scored at its end. `length` is how much of `ids` the batch holds.
 */
export function scoredPosition(ids: ArrayLike<number>, length: number, padId: number): number {
  for (let t = Math.min(length, ids.length) - 1; t > 0; t--) if (ids[t] !== padId) return t;
  return 0;
}
