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

/**
 * The next token: greedy at temperature 0, else a draw from softmax(logits / temperature) cut to the top k and to
 * the nucleus of mass p (transformers' order: repetition penalty, then top-k, then top-p). Only as many tokens are
 * ranked as the cuts need, since sorting a whole vocabulary (150k for Qwen) per token took longer than a GPU's step.
 */
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
  const max = scores[best];
  const weight = (score: number) => Math.exp((score - max) / s.temperature);
  // Without top-k the whole softmax counts: drawn from directly, or, for the nucleus, its total mass.
  let total: number | null = null;
  if (s.topK === 0) {
    const weights = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) weights[i] = weight(scores[i]);
    if (s.topP >= 1) return drawIndex(weights, random);
    total = weights.reduce((a, b) => a + b, 0);
  }

  // Candidates, most likely first; top-k and top-p cut the list, and the rest keep their relative weights. The
  // nucleus alone is found in a ranked prefix that grows until it holds mass p of the whole.
  for (let n = s.topK > 0 ? Math.min(s.topK, scores.length) : 64; ; n = Math.min(scores.length, 4 * n)) {
    const order = topIds(scores, n);
    const weights = order.map((id) => weight(scores[id]));
    let kept = weights.length;
    if (s.topP < 1) {
      const mass = s.topP * (total ?? weights.reduce((a, b) => a + b, 0));
      let reached = 0;
      kept = 0;
      // Keep tokens until their mass reaches p; the token that crosses it stays, as in transformers.
      while (kept < weights.length && reached < mass) reached += weights[kept++];
      if (reached < mass && n < scores.length) continue;
    }
    return order[drawIndex(weights.slice(0, Math.max(1, kept)), random)];
  }
}

/** An index drawn with probability proportional to its weight. */
function drawIndex(weights: ArrayLike<number>, random: () => number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  let r = random() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/**
 * The ids of the n highest scores, highest first, ties to the lower id (as a stable sort ranks them): one pass
 * keeping a min-heap of the best n so far, O(V log n); a sort of them all when n is a large share of them.
 */
function topIds(scores: Float64Array, n: number): number[] {
  // a ranks below b.
  const below = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  if (4 * n >= scores.length) {
    return Array.from(scores.keys())
      .sort((a, b) => scores[b] - scores[a] || a - b)
      .slice(0, n);
  }
  const heap: number[] = [];
  const siftDown = (at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      const r = l + 1;
      let least = at;
      if (l < heap.length && below(heap[l], heap[least])) least = l;
      if (r < heap.length && below(heap[r], heap[least])) least = r;
      if (least === at) return;
      [heap[at], heap[least]] = [heap[least], heap[at]];
      at = least;
    }
  };
  for (let id = 0; id < scores.length; id++) {
    if (heap.length < n) {
      heap.push(id);
      for (let at = heap.length - 1; at > 0 && below(heap[at], heap[(at - 1) >> 1]); at = (at - 1) >> 1) {
        [heap[at], heap[(at - 1) >> 1]] = [heap[(at - 1) >> 1], heap[at]];
      }
    } else if (below(heap[0], id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
}
