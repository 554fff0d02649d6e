/**
 * Group-relative policy optimization (Shao et al., 2024, as TRL's GRPOTrainer computes it with one policy update
 * per generation batch). Each prompt's G sampled completions are scored; a completion's advantage is its reward
 * against its own group's:
 *   A = (r - mean(group)) / (std(group) + 1e-4)
 * Every completion token t then carries
 *   loss_t = -A · log pi(t) + beta · KL_t,   KL_t = exp(ref_t - log pi(t)) - (ref_t - log pi(t)) - 1
 * (the k3 estimator of KL(pi || ref), always >= 0; ref is the model with the adapter off), averaged over all
 * completion tokens of the step. The engine computes each token's cross-entropy CE_t = -log pi(t), so the gradient
 * reaches a token as its loss weight
 *   d loss_t / d CE_t = A + beta · (exp(ref_t - log pi(t)) - 1).
 */

/** Each reward's advantage within its group; groups of `groupSize` consecutive rewards. */
export function groupAdvantages(rewards: readonly number[], groupSize: number): number[] {
  if (groupSize < 1 || rewards.length % groupSize !== 0) {
    throw new Error(`${rewards.length} rewards do not make groups of ${groupSize}`);
  }
  const advantages: number[] = [];
  for (let first = 0; first < rewards.length; first += groupSize) {
    const group = rewards.slice(first, first + groupSize);
    const mean = group.reduce((a, b) => a + b, 0) / groupSize;
    const std = sampleStd(group);
    for (const r of group) advantages.push((r - mean) / (std + 1e-4));
  }
  return advantages;
}

/** The sample standard deviation, as torch.std computes it; a group of one has no spread. */
export function sampleStd(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1));
}

/** The k3 estimate of KL(pi || ref) at one token, from the two log-probabilities of the token sampled. */
export function tokenKl(policyLogProb: number, referenceLogProb: number): number {
  const d = referenceLogProb - policyLogProb;
  return Math.exp(d) - d - 1;
}

/** A completion token's loss and d loss / d CE, before dividing by the step's completion tokens. */
export function grpoToken(
  advantage: number,
  policyLogProb: number,
  referenceLogProb: number,
  beta: number,
): { loss: number; kl: number; weight: number } {
  const kl = beta > 0 ? tokenKl(policyLogProb, referenceLogProb) : 0;
  const ratio = beta > 0 ? Math.exp(referenceLogProb - policyLogProb) : 1;
  return { loss: -advantage * policyLogProb + beta * kl, kl, weight: advantage + beta * (ratio - 1) };
}
