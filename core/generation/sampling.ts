/**
 * The next token from a model's logits, as transformers' generate picks it: repetition penalty on the tokens so
 * far, then temperature (0: greedy), top-k, top-p (nucleus), then a draw from the seeded generator.
 */

export interface SamplingSettings {
  /** 0 picks the most likely token (greedy); above 0 divides the logits before sampling. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep the most likely tokens whose probabilities add up to p; 1 keeps all. */
  topP: number;
  /** Above 1 makes tokens already in the sequence less likely (CTRL's penalty); 1 is off. */
  repetitionPenalty: number;
}

export const DEFAULT_SAMPLING: SamplingSettings = { temperature: 0.7, topK: 50, topP: 0.95, repetitionPenalty: 1 };

export function samplingProblems(s: SamplingSettings): string[] {
  const problems: string[] = [];
  if (!(s.temperature >= 0)) problems.push(`the temperature must be 0 (greedy) or more, not ${s.temperature}`);
  if (!(Number.isInteger(s.topK) && s.topK >= 0))
    problems.push(`top-k must be a whole number of 0 (off) or more, not ${s.topK}`);
  if (!(s.topP > 0 && s.topP <= 1)) problems.push(`top-p must be above 0 and at most 1, not ${s.topP}`);
  if (!(s.repetitionPenalty > 0)) problems.push(`the repetition penalty must be above 0, not ${s.repetitionPenalty}`);
  return problems;
}

export function sampleToken(
  logits: ArrayLike<number>,
  previous: readonly number[],
  s: SamplingSettings,
  random: () => number,
): number {
  const scores = Float64Array.from(logits);
  if (s.repetitionPenalty !== 1) {
    for (const id of new Set(previous)) {
      scores[id] = scores[id] > 0 ? scores[id] / s.repetitionPenalty : scores[id] * s.repetitionPenalty;
    }
  }
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  if (s.temperature === 0) return best;

  // Candidates, most likely first; top-k and top-p cut the list, and the rest keep their relative weights.
  let order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
  if (s.topK > 0) order = order.slice(0, s.topK);
  const max = scores[order[0]];
  let weights = order.map((i) => Math.exp((scores[i] - max) / s.temperature));
  if (s.topP < 1) {
    const total = weights.reduce((a, b) => a + b, 0);
    let kept = 0;
    let mass = 0;
    // Keep tokens until their mass reaches p; the token that crosses it stays, as in transformers.
    while (kept < weights.length && mass < s.topP * total) mass += weights[kept++];
    order = order.slice(0, Math.max(1, kept));
    weights = weights.slice(0, order.length);
  }
  let r = random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < order.length; i++) {
    r -= weights[i];
    if (r < 0) return order[i];
  }
  return order[order.length - 1];
}
