/**
 * chrF (Popović 2015) for one answer against one reference, as sacrebleu's `sentence_chrf` computes it: character
 * n-grams of orders 1..6, white space removed, F-beta with beta 2, on a 0–100 scale.
 */

export interface ChrfOptions {
  /** Largest character n-gram order (sacrebleu: 6). */
  charOrder?: number;
  /** Recall weighs beta times as much as precision (sacrebleu: 2). */
  beta?: number;
  /** Keep white space inside n-grams (sacrebleu: false, it removes it). */
  whitespace?: boolean;
  /**
   * true: the mean over all orders of each order's F, an order without n-grams counting 1e-16 (chrF++.py, NLTK).
   * false (sacrebleu's default): F of the precision and recall averaged over the orders where both sides have n-grams.
   */
  epsSmoothing?: boolean;
}

/** Code points of Python's str.isspace(), which sacrebleu's `''.join(line.split())` removes (\s is not the same set). */
const PYTHON_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/**
 * counts[n - 1] = { n-gram → occurrences } for n = 1..maxOrder, over code points (Python indexes code points, so
 * an emoji is one character).
 */
export function charNgrams(text: string, maxOrder: number, whitespace = false): Map<string, number>[] {
  const all = Array.from(text);
  const chars = whitespace ? all : all.filter((char) => !PYTHON_WHITESPACE.has(char.codePointAt(0) ?? 0));
  const counts: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const order = new Map<string, number>();
    for (let i = 0; i + n <= chars.length; i++) {
      const gram = chars.slice(i, i + n).join('');
      order.set(gram, (order.get(gram) ?? 0) + 1);
    }
    counts.push(order);
  }
  return counts;
}

/** [answer n-grams (0 when the reference has none of this order), reference n-grams, clipped matches]. */
function matchStatistics(answer: Map<string, number>, reference: Map<string, number>): [number, number, number] {
  let answerCount = 0;
  let matches = 0;
  for (const [gram, count] of answer) {
    answerCount += count;
    matches += Math.min(count, reference.get(gram) ?? 0);
  }
  let referenceCount = 0;
  for (const count of reference.values()) referenceCount += count;
  return [reference.size > 0 ? answerCount : 0, referenceCount, matches];
}

/**
 * Per order n: Pₙ = matches / answer n-grams, Rₙ = matches / reference n-grams; then
 * F = (1 + β²)·P·R / (β²·P + R) × 100, combined over the orders as `epsSmoothing` says. In [0, 100].
 */
export function chrF(answer: string, reference: string, options: ChrfOptions = {}): number {
  const { charOrder = 6, beta = 2, whitespace = false, epsSmoothing = false } = options;
  const answerGrams = charNgrams(answer, charOrder, whitespace);
  const referenceGrams = charNgrams(reference, charOrder, whitespace);
  const eps = 1e-16;
  const factor = beta * beta;
  let sumF = 0;
  let sumPrecision = 0;
  let sumRecall = 0;
  let effectiveOrder = 0;
  for (let n = 0; n < charOrder; n++) {
    const [answerCount, referenceCount, matches] = matchStatistics(answerGrams[n], referenceGrams[n]);
    const precision = answerCount > 0 ? matches / answerCount : eps;
    const recall = referenceCount > 0 ? matches / referenceCount : eps;
    const denominator = factor * precision + recall;
    sumF += denominator > 0 ? ((1 + factor) * precision * recall) / denominator : eps;
    if (answerCount > 0 && referenceCount > 0) {
      sumPrecision += precision;
      sumRecall += recall;
      effectiveOrder++;
    }
  }
  if (epsSmoothing) return (100 * sumF) / charOrder;
  if (effectiveOrder === 0) return 0;
  const precision = sumPrecision / effectiveOrder;
  const recall = sumRecall / effectiveOrder;
  if (precision + recall === 0) return 0;
  return (100 * (1 + factor) * precision * recall) / (factor * precision + recall);
}
