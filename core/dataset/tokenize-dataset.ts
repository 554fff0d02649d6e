/**
 * A loaded dataset through a model's tokenizer: every example rendered (a template that refuses a record makes it an
 * issue, not a crash), the token-length statistics, and previews that show which tokens carry loss.
 */
import type { ModelTokenizer } from '../tokenizer';
import { type LengthStats, lengthStats } from './batches';
import type { DatasetIssue, SourcedExample } from './load-dataset';
import { IGNORE_INDEX, type RenderOptions, renderExample, type TokenizedExample } from './render';

export interface TokenizedSource {
  source: SourcedExample;
  /** One sequence per conversation or document; chosen then rejected for a preference pair. */
  sequences: TokenizedExample[];
}

export function tokenizeExamples(
  examples: SourcedExample[],
  tokenizer: ModelTokenizer,
  options: RenderOptions = {},
  onProgress?: (done: number) => void,
): { tokenized: TokenizedSource[]; issues: DatasetIssue[] } {
  const tokenized: TokenizedSource[] = [];
  const issues: DatasetIssue[] = [];
  examples.forEach((source, i) => {
    try {
      tokenized.push({ source, sequences: renderExample(tokenizer, source.example, options) });
    } catch (error) {
      issues.push({
        file: source.file,
        line: source.line,
        reason: `the chat template refuses it: ${(error as Error).message}`,
      });
    }
    if (onProgress && i % 256 === 255) onProgress(i + 1);
  });
  return { tokenized, issues };
}

/** Lengths of every sequence training would see, against the chosen max length. */
export function sequenceStats(tokenized: TokenizedSource[], maxLength: number): LengthStats {
  return lengthStats(
    tokenized.flatMap((t) => t.sequences.map((s) => s.ids.length)),
    maxLength,
  );
}

export interface PreviewSegment {
  text: string;
  loss: boolean;
  tokens: number;
}

/** A sequence as runs of text that do or do not carry loss, each run decoded whole (so characters stay intact). */
export function previewSegments(tokenizer: ModelTokenizer, sequence: TokenizedExample): PreviewSegment[] {
  const segments: PreviewSegment[] = [];
  let start = 0;
  for (let i = 1; i <= sequence.ids.length; i++) {
    const loss = sequence.labels[start] !== IGNORE_INDEX;
    if (i === sequence.ids.length || (sequence.labels[i] !== IGNORE_INDEX) !== loss) {
      segments.push({ text: tokenizer.decode(sequence.ids.slice(start, i)), loss, tokens: i - start });
      start = i;
    }
  }
  return segments;
}
