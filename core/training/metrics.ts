/** What a training run reports: each optimizer step's figures, and each validation's. */

export interface StepMetrics {
  step: number;
  totalSteps: number;
  /** Epochs done, fractional. */
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens (padding excluded) through forward and backward per second, over this step. */
  tokensPerSecond: number;
  /** Policy optimization: the mean reward of the step's completions, */
  reward?: number;
  /** the mean spread (standard deviation) of the rewards within a prompt's group, */
  rewardStd?: number;
  /** the mean KL to the base model per completion token, */
  kl?: number;
  /** and the mean completion length in tokens. */
  completionLength?: number;
}

/** One line of a run's metrics, as `metrics.jsonl` and the studio's charts keep them. */
export type MetricRecord =
  | ({ type: 'train' } & StepMetrics)
  | {
      type: 'eval';
      step: number;
      validationLoss: number | null;
      validationAccuracy: number | null;
      validationReward: number | null;
    };
