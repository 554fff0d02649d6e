import type { RewardScorer } from '../model/reward-scorer';

/** One sampled completion, as a reward reads it. */
export interface RewardSample {
  /** The prompt's last user turn. */
  prompt: string;
  /** The completion's text, special tokens left out. */
  completion: string;
  /** The prompt record's reference answer, when it has one. */
  reference?: string;
  /** Prompt and completion token ids, as a reward model reads them. */
  ids: number[];
}

/** Where policy optimization's rewards come from: a trained reward model, a rule, an ONNX model. */
export interface RewardSource {
  /** Names the source in messages. */
  readonly name: string;
  /** One finite reward per sample; throws with a message naming the source when it cannot give them. */
  score(samples: RewardSample[]): Promise<number[]>;
  destroy(): void;
}

/** A reward adapter trained with the `rm` method (or any SEQ_CLS PEFT adapter for this base model). */
export function rewardModelSource(name: string, scorer: RewardScorer): RewardSource {
  return {
    name,
    score: (samples) => scorer.score(samples.map((s) => s.ids)),
    destroy: () => scorer.destroy(),
  };
}
