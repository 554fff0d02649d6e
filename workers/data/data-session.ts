/**
 * The dataset a person dropped, held in the data worker: read and checked there, rendered with the model's tokenizer
 * there, so the page only ever receives summaries (and never waits on a parse).
 */

import { type LengthStats, packBlocks, splitTrainValidation, truncate } from '../../core/dataset/batches';
import type { DatasetFormat, FieldMapping } from '../../core/dataset/formats';
import {
  type Dataset,
  DatasetError,
  type DatasetIssue,
  type FileSummary,
  issuesCsv,
  type LoadProgress,
  loadDataset,
} from '../../core/dataset/load-dataset';
import { IGNORE_INDEX } from '../../core/dataset/render';
import {
  type PreviewSegment,
  previewSegments,
  sequenceStats,
  type TokenizedSource,
  tokenizeExamples,
} from '../../core/dataset/tokenize-dataset';
import { type EvalExamples, evalExamples } from '../../core/eval/examples';
import { trlJsonl } from '../../core/export/trl-job';
import type { FileCache } from '../../core/hub';
import { loadTokenizer, type ModelTokenizer } from '../../core/tokenizer';
import { type HubSettings, type ModelSource, readerFor, sourceLabel } from '../engine/model-loader';

/** How many issues travel to the page; the full list downloads as CSV. */
const ISSUES_SHOWN = 200;

export interface DatasetSummary {
  format: DatasetFormat;
  detected: boolean;
  mapping: FieldMapping;
  columns: string[];
  files: FileSummary[];
  records: number;
  skipped: number;
  /** The first issues, in file and line order. */
  issues: DatasetIssue[];
  /** How many records were skipped for each kind of reason, most common first. */
  reasons: { reason: string; count: number }[];
}

export interface TokenSettings {
  maxLength: number;
  trainOnPrompt: boolean;
  /** A fraction (below 1) or a count of records held out for validation. */
  validation: number;
  seed: number;
}

export interface PreviewSequence {
  /** What this sequence is: the conversation, a document, the chosen or rejected answer, a prompt. */
  label: string;
  segments: PreviewSegment[];
  tokens: number;
  /** Tokens past the max length, cut off. */
  cut: number;
}

export interface PreviewRecord {
  file: string;
  line: number;
  sequences: PreviewSequence[];
}

export interface TokenSummary {
  model: string;
  /** Whether the model has its own chat template (else Hone's plain one renders conversations). */
  hasChatTemplate: boolean;
  stats: LengthStats;
  /** Raw text is packed into blocks of maxLength, so nothing is cut: how many blocks it makes. */
  packedBlocks: number | null;
  train: number;
  validation: number;
  /** Tokens that carry loss, over the whole dataset: what one epoch trains on. */
  lossTokens: number;
  /** Records the chat template refused. */
  refused: DatasetIssue[];
  previews: PreviewRecord[];
}

export type DataProgress =
  | { stage: 'reading'; progress: LoadProgress }
  | { stage: 'tokenizing'; done: number; total: number };

/** The reason without what differs record to record (the JSON parser's details, which message), for counting. */
function reasonKind(reason: string): string {
  if (reason.startsWith('malformed JSON')) return 'malformed JSON';
  return reason.replace(/message \d+/g, 'message N').replace(/part \d+/g, 'part N');
}

function sequenceLabels(kind: string, count: number): string[] {
  if (kind === 'preference') return ['chosen', 'rejected'];
  if (kind === 'prompt') return ['prompt'];
  if (kind === 'text') return ['document'];
  return Array(count).fill('conversation');
}

export class DataSession {
  private dataset: Dataset | null = null;
  private tokenizer: { key: string; tokenizer: ModelTokenizer } | null = null;
  private rendered: { dataset: Dataset; key: string; tokenized: TokenizedSource[]; issues: DatasetIssue[] } | null =
    null;
  private refused: DatasetIssue[] = [];
  /** The records of the last tokenization, in the split training uses. */
  private split: { train: TokenizedSource[]; validation: TokenizedSource[] } = { train: [], validation: [] };

  constructor(private readonly cache: FileCache | null) {}

  /**
   * Reads the files. A dataset nothing can be made of is an answer, not a throw: errors lose their fields on the way
   * to the page, and the columns seen are what lets the person pick a format by hand.
   */
  async load(
    files: { name: string; blob: Blob }[],
    choice: { format?: DatasetFormat; mapping?: FieldMapping },
    onProgress?: (p: DataProgress) => void,
  ): Promise<DatasetSummary | { unusable: string; columns: string[] }> {
    this.dataset = null;
    let dataset: Dataset;
    try {
      dataset = await loadDataset(files, {
        ...choice,
        onProgress: (progress) => onProgress?.({ stage: 'reading', progress }),
      });
    } catch (error) {
      if (error instanceof DatasetError) return { unusable: error.message, columns: error.columns };
      throw error;
    }
    this.dataset = dataset;
    const counts = new Map<string, number>();
    for (const issue of dataset.issues)
      counts.set(reasonKind(issue.reason), (counts.get(reasonKind(issue.reason)) ?? 0) + 1);
    return {
      format: dataset.format,
      detected: dataset.detected,
      mapping: dataset.mapping,
      columns: dataset.columns,
      files: dataset.files,
      records: dataset.examples.length,
      skipped: dataset.issues.length,
      issues: dataset.issues.slice(0, ISSUES_SHOWN),
      reasons: [...counts].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count),
    };
  }

  /** Every issue, the chat template's refusals included, as CSV. */
  issuesCsv(): string {
    return issuesCsv([...(this.dataset?.issues ?? []), ...this.refused]);
  }

  private async tokenizerFor(source: ModelSource, hub: HubSettings): Promise<ModelTokenizer> {
    const key = JSON.stringify(source.kind === 'files' ? source.files.map((f) => f.path) : source);
    if (this.tokenizer?.key !== key) {
      const tokenizer = await loadTokenizer(readerFor(source, hub, this.cache), sourceLabel(source));
      this.tokenizer = { key, tokenizer };
    }
    return this.tokenizer.tokenizer;
  }

  /** The dataset through the model's tokenizer: lengths, the split, and the first records as the model reads them. */
  async tokenize(
    source: ModelSource,
    hub: HubSettings,
    settings: TokenSettings,
    previewCount: number,
    onProgress?: (p: DataProgress) => void,
  ): Promise<TokenSummary> {
    const dataset = this.dataset;
    if (!dataset) throw new Error('no dataset is loaded');
    if (!Number.isInteger(settings.maxLength) || settings.maxLength < 2) {
      throw new Error(`the max length must be a whole number of tokens, at least 2 (not ${settings.maxLength})`);
    }
    const tokenizer = await this.tokenizerFor(source, hub);
    const total = dataset.examples.length;
    // Rendering is the slow part and depends only on the dataset, the tokenizer and prompt loss: a new max length,
    // split or seed reuses it.
    const key = `${this.tokenizer?.key}|${settings.trainOnPrompt}`;
    if (this.rendered?.dataset !== dataset || this.rendered.key !== key) {
      const result = tokenizeExamples(dataset.examples, tokenizer, settings, (done) =>
        onProgress?.({ stage: 'tokenizing', done, total }),
      );
      this.rendered = { dataset, key, ...result };
    }
    const { tokenized, issues } = this.rendered;
    this.refused = issues;
    const split = splitTrainValidation(tokenized, settings.validation, settings.seed);
    this.split = split;
    const isText = dataset.format === 'text';
    const previews = tokenized.slice(0, previewCount).map(({ source: s, sequences }) => {
      const labels = sequenceLabels(s.example.kind, sequences.length);
      return {
        file: s.file,
        line: s.line,
        sequences: sequences.map((sequence, i) => {
          const kept = truncate(sequence, settings.maxLength);
          return {
            label: labels[i],
            segments: previewSegments(tokenizer, kept),
            tokens: sequence.ids.length,
            cut: isText ? 0 : sequence.ids.length - kept.ids.length,
          };
        }),
      };
    });
    return {
      model: sourceLabel(source),
      hasChatTemplate: tokenizer.hasChatTemplate,
      stats: sequenceStats(tokenized, settings.maxLength),
      packedBlocks: isText
        ? packBlocks(
            split.train.map((t) => t.sequences[0].ids),
            settings.maxLength,
          ).length
        : null,
      train: split.train.length,
      validation: split.validation.length,
      lossTokens: tokenized.reduce(
        (n, t) => n + t.sequences.reduce((m, s) => m + s.labels.filter((l) => l !== IGNORE_INDEX).length, 0),
        0,
      ),
      refused: issues.slice(0, ISSUES_SHOWN),
      previews,
    };
  }

  /**
   * The dataset as the last tokenization split it (the split training uses), as JSONL in TRL's formats: what a job
   * exported for GPU servers trains and validates on (with or without loss on the prompts, as the job trains).
   */
  jobData(trainOnPrompt: boolean): { train: string; validation: string } {
    const jsonl = (sources: TokenizedSource[]) =>
      trlJsonl(
        sources.map((s) => s.source.example),
        { trainOnPrompt },
      );
    return { train: jsonl(this.split.train), validation: jsonl(this.split.validation) };
  }

  /**
   * Files of their own (any format the Data step reads) as evaluation examples, leaving the dataset as it is; the
   * first records skipped, with file, line and why.
   */
  async examplesFrom(files: { name: string; blob: Blob }[]): Promise<EvalExamples & { issues: DatasetIssue[] }> {
    const dataset = await loadDataset(files);
    return { ...evalExamples(dataset.examples), issues: dataset.issues.slice(0, ISSUES_SHOWN) };
  }

  /** The held-out records (the split training uses) as evaluation examples: prompts and their references. */
  heldOutExamples(): EvalExamples {
    return evalExamples(this.split.validation.map((t) => t.source));
  }

  /**
   * The held-out records as prompts for the Compare step: the last user turn, and the answer (the chosen one of a
   * preference pair, an RL prompt's reference) to show beside the models'.
   */
  validationPrompts(count: number): ValidationPrompt[] {
    return this.heldOutExamples()
      .examples.flatMap(({ id, prompt, reference }) => {
        const user = prompt.findLast((m) => m.role === 'user');
        return user ? [{ id, prompt: user.content, reference }] : [];
      })
      .slice(0, count);
  }
}

export interface ValidationPrompt {
  /** `file:line`. */
  id: string;
  /** The last user turn before the answer. */
  prompt: string;
  reference: string | null;
}
