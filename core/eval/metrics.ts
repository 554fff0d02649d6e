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

/** A score as tables show it: chrF on its 0-100 scale to one decimal, the others to three; – for none. */
export function formatScore(metric: string, x: number): string {
  if (Number.isNaN(x)) return '–';
  return metric === 'chrF' ? x.toFixed(1) : x.toFixed(3);
}
