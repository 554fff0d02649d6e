/**
 * Scores of one answer against its reference, and the registry the Evaluate step offers them from.
 */
import { chrF } from './chrf';
import { containsWords, normalizeAnswer } from './normalize';
import { rougeL } from './rouge';

export { chrF } from './chrf';
export { rougeL } from './rouge';

/** normalize(answer) = normalize(reference) ? 1 : 0 (SQuAD's exact match; two empty answers match). */
export function exactMatch(answer: string, reference: string): 0 | 1 {
  return normalizeAnswer(answer) === normalizeAnswer(reference) ? 1 : 0;
}

/**
 * normalize(reference) occurs as whole words in normalize(answer) ? 1 : 0; an empty reference → 0.
 * Lets a chatty answer ("The capital is Paris.") count for a short reference without "5" counting inside "150".
 */
export function contains(answer: string, reference: string): 0 | 1 {
  return containsWords(normalizeAnswer(answer), normalizeAnswer(reference)) ? 1 : 0;
}

/** Short answers (a name, a number, a label) or free text (a sentence or more). */
export type AnswerKind = 'short' | 'free';

export type MetricName = 'exactMatch' | 'contains' | 'rougeL' | 'chrF';

export interface MetricInfo {
  name: MetricName;
  /** What the UI calls it. */
  label: string;
  /** One or two sentences for the UI. */
  description: string;
  /** The kinds of answers it suits. */
  fits: readonly AnswerKind[];
  higherIsBetter: boolean;
  /** Scores lie in [0, max]. */
  max: number;
  score: (answer: string, reference: string) => number;
}

export const METRICS: Readonly<Record<MetricName, MetricInfo>> = {
  exactMatch: {
    name: 'exactMatch',
    label: 'Exact match',
    description:
      'Share of answers equal to the reference, ignoring case, punctuation, articles (a, an, the) and spacing.',
    fits: ['short'],
    higherIsBetter: true,
    max: 1,
    score: exactMatch,
  },
  contains: {
    name: 'contains',
    label: 'Contains',
    description:
      'Share of answers that contain the reference as whole words, normalized as for exact match: ' +
      'forgives a model that answers in a sentence.',
    fits: ['short'],
    higherIsBetter: true,
    max: 1,
    score: contains,
  },
  rougeL: {
    name: 'rougeL',
    label: 'ROUGE-L',
    description:
      'Word overlap in order: F-measure of the longest common subsequence of words (rouge-score). ' +
      'Counts only the letters a–z and digits, so it suits English-like text.',
    fits: ['free'],
    higherIsBetter: true,
    max: 1,
    score: rougeL,
  },
  chrF: {
    name: 'chrF',
    label: 'chrF',
    description: 'Character n-gram F-score (sacrebleu, 0–100): credits partly right words and works in any language.',
    fits: ['free', 'short'],
    higherIsBetter: true,
    max: 100,
    score: (answer, reference) => chrF(answer, reference),
  },
};

/** The metrics whose `fits` includes `kind`, in registry order. */
export function metricsFor(kind: AnswerKind): MetricInfo[] {
  return Object.values(METRICS).filter((metric) => metric.fits.includes(kind));
}

/** Short answers (a median of four words or fewer: names, labels, numbers) or free text, from the references. */
export function answerKind(references: readonly (string | null)[]): AnswerKind {
  const words = references
    .flatMap((r) => (r === null ? [] : [r.trim().split(/\s+/).filter(Boolean).length]))
    .sort((a, b) => a - b);
  if (words.length === 0) return 'free';
  return words[Math.floor((words.length - 1) / 2)] <= 4 ? 'short' : 'free';
}

/**
 * Scores that come from a model or a rule rather than from comparing strings, under these names in a report beside
 * the metrics.
 */
export const MEASURES = {
  perplexity: {
    label: 'Perplexity',
    description:
      "How surprised the model is by the example's reference answer after its prompt (by raw text, all of it): " +
      'exp of its mean loss per token. Needs no answer; lower is better.',
    higherIsBetter: false,
  },
  reward: {
    label: 'Reward',
    description:
      "A reward model's score of each answer; the wins against the first model are the examples where the reward " +
      'model prefers the answer (a pairwise win rate).',
    higherIsBetter: true,
  },
  rule: {
    label: 'Rule',
    description: 'Your JavaScript rule (prompt, completion, reference) => number, run in a sandboxed worker.',
    higherIsBetter: true,
  },
} as const;

export type MeasureName = keyof typeof MEASURES;

/** What tables and comparisons need of any score in a report: its label, direction, and scale where fixed. */
export function scoreInfo(name: string): { label: string; higherIsBetter: boolean; max: number | null } {
  const metric = METRICS[name as MetricName];
  if (metric) return { label: metric.label, higherIsBetter: metric.higherIsBetter, max: metric.max };
  const measure = MEASURES[name as MeasureName];
  return { label: measure?.label ?? name, higherIsBetter: measure?.higherIsBetter ?? true, max: null };
}

/** A score as tables show it: chrF on its 0-100 scale to one decimal, perplexity to two, the others to three; – for none. */
export function formatScore(metric: string, x: number): string {
  if (Number.isNaN(x)) return '–';
  return metric === 'chrF' ? x.toFixed(1) : metric === 'perplexity' ? x.toFixed(2) : x.toFixed(3);
}
