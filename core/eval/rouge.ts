/**
 * ROUGE-L as Google's rouge-score package computes it (`RougeScorer(['rougeL'])`, no stemming): the F-measure of
 * the longest common subsequence of the two token lists.
 */

/**
 * lower-case → every run of characters outside [a-z0-9] → ' ' → split on white space, empties dropped.
 * rouge-score's `tokenize.tokenize`; letters outside ASCII (é, ж, 北) are separators there, so they are here too.
 */
export function rougeTokens(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((token) => token !== '');
}

/** |LCS(a, b)| by dynamic programming over one row: O(|a|·|b|) time, O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const row = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = 0; // row[j - 1] of the previous i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = a[i - 1] === b[j - 1] ? diagonal + 1 : Math.max(above, row[j - 1]);
      diagonal = above;
    }
  }
  return row[b.length];
}

export interface RougeLScores {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** P = |LCS| / |answer tokens|, R = |LCS| / |reference tokens|, F = 2PR / (P + R); all 0 when either has no tokens. */
export function rougeLScores(answer: string, reference: string): RougeLScores {
  const answerTokens = rougeTokens(answer);
  const referenceTokens = rougeTokens(reference);
  if (answerTokens.length === 0 || referenceTokens.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(referenceTokens, answerTokens);
  const precision = lcs / answerTokens.length;
  const recall = lcs / referenceTokens.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/** ROUGE-L's F-measure, in [0, 1]. */
export function rougeL(answer: string, reference: string): number {
  return rougeLScores(answer, reference).fmeasure;
}
