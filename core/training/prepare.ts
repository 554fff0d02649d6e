/**
 * From dataset files to what a run trains on (sequences, or preference pairs), with every reason the run cannot
 * start: the one path the studio's worker and `hone train` share.
 */
import type { DatasetFormat, FieldMapping } from '../dataset/formats';
import { loadDataset } from '../dataset/load-dataset';
import type { DatasetFile } from '../dataset/read-records';
import { tokenizeExamples } from '../dataset/tokenize-dataset';
import type { ModelConfig } from '../model-config';
import type { ModelTokenizer } from '../tokenizer';
import {
  nextTokenSequences,
  preferencePairs,
  rlPrompts,
  type TrainingPairs,
  type TrainingPrompts,
  type TrainingSequences,
} from './sequences';
import { settingsProblems, type TrainSettings } from './settings';

export interface DataChoice {
  format?: DatasetFormat;
  mapping?: FieldMapping;
  /** A fraction (below 1) or a count of records held out for validation. */
  validation: number;
  /** Seeds the split (the Data step shows the same one); the run's seed when absent. */
  splitSeed?: number;
  trainOnPrompt: boolean;
}

export interface PreparedRun {
  format: DatasetFormat;
  records: number;
  /** Records skipped (unreadable, or refused by the chat template). */
  skipped: number;
  /** What the method trains on: sequences (next-token methods), preference pairs (reward model, DPO) or prompts (RL). */
  data:
    | ({ kind: 'sequences' } & TrainingSequences)
    | ({ kind: 'pairs' } & TrainingPairs)
    | ({ kind: 'prompts' } & TrainingPrompts);
  /** Why the run cannot start; empty when it can. */
  problems: string[];
}

export async function prepareRun(
  files: DatasetFile[],
  choice: DataChoice,
  tokenizer: ModelTokenizer,
  config: ModelConfig,
  settings: TrainSettings,
): Promise<PreparedRun> {
  const dataset = await loadDataset(files, { format: choice.format, mapping: choice.mapping });
  const { tokenized, issues } = tokenizeExamples(dataset.examples, tokenizer, { trainOnPrompt: choice.trainOnPrompt });
  const split = { validation: choice.validation, seed: choice.splitSeed ?? settings.seed };
  const data: PreparedRun['data'] =
    dataset.format === 'preference'
      ? { kind: 'pairs', ...preferencePairs(tokenized, settings.seqLen, split) }
      : dataset.format === 'rl_prompts'
        ? { kind: 'prompts', ...rlPrompts(tokenized, settings.seqLen, split) }
        : { kind: 'sequences', ...nextTokenSequences(tokenized, dataset.format === 'text', settings.seqLen, split) };
  return {
    format: dataset.format,
    records: tokenized.length,
    skipped: dataset.issues.length + issues.length,
    data,
    problems: settingsProblems(settings, { config, format: dataset.format, sequences: data.train.length }),
  };
}
