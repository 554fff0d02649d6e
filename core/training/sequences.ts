/**
 * A tokenized dataset into the sequences a next-token method trains on: split into training and validation by
 * record (seeded), raw text packed into blocks of the sequence length, conversations cut at it. A conversation
 * whose answer starts past the cut has nothing left to learn from and is counted, not trained on.
 */

import { countLossTargets, packBlocks, splitTrainValidation, truncate } from '../dataset/batches';
import { lastUserTurn } from '../dataset/formats';
import type { TokenizedExample } from '../dataset/render';
import type { TokenizedSource } from '../dataset/tokenize-dataset';

export interface SplitSettings {
  /** A fraction (below 1) or a count of records held out. */
  validation: number;
  seed: number;
}

export interface TrainingSequences {
  train: TokenizedExample[];
  validation: TokenizedExample[];
  /** Sequences with no loss left within the sequence length. */
  dropped: number;
}

export function nextTokenSequences(
  tokenized: TokenizedSource[],
  packed: boolean,
  seqLen: number,
  split: SplitSettings,
): TrainingSequences {
  const parts = splitTrainValidation(tokenized, split.validation, split.seed);
  let dropped = 0;
  const prepare = (sources: TokenizedSource[]): TokenizedExample[] => {
    const sequences = sources.flatMap((s) => s.sequences);
    if (packed)
      return packBlocks(
        sequences.map((s) => s.ids),
        seqLen,
      );
    return sequences
      .map((s) => truncate(s, seqLen))
      .filter((s) => {
        const learnable = countLossTargets([s.labels]) > 0;
        if (!learnable) dropped++;
        return learnable;
      });
  };
  return { train: prepare(parts.train), validation: prepare(parts.validation), dropped };
}

/** A prompt for policy optimization: its ids (rendered with the generation prompt) and what a reward reads. */
export interface RlPrompt {
  ids: number[];
  /** The last user turn's text: what a reward rule sees as the prompt. */
  prompt: string;
  /** The record's reference answer, for rules that check against one. */
  reference?: string;
}

export interface TrainingPrompts {
  train: RlPrompt[];
  validation: RlPrompt[];
  /** Prompts that leave no room for a completion within the sequence length. */
  dropped: number;
}

/** The longest row a run on these prompts makes: the longest prompt and a whole completion, within seqLen. */
export function rlSequenceLength(prompts: TrainingPrompts, seqLen: number, maxCompletion: number): number {
  const longest = Math.max(0, ...[...prompts.train, ...prompts.validation].map((p) => p.ids.length));
  return Math.min(seqLen, longest + maxCompletion);
}

/** RL prompt records into prompts that leave room for at least one completion token, split by record. */
export function rlPrompts(tokenized: TokenizedSource[], seqLen: number, split: SplitSettings): TrainingPrompts {
  const parts = splitTrainValidation(tokenized, split.validation, split.seed);
  let dropped = 0;
  const prepare = (sources: TokenizedSource[]): RlPrompt[] =>
    sources.flatMap(({ source, sequences: [rendered] }) => {
      const { example } = source;
      if (example.kind !== 'prompt') throw new Error(`an RL prompt was expected, got a ${example.kind} record`);
      if (rendered.ids.length >= seqLen) {
        dropped++;
        return [];
      }
      return [{ ids: rendered.ids, prompt: lastUserTurn(example.prompt), reference: example.reference }];
    });
  return { train: prepare(parts.train), validation: prepare(parts.validation), dropped };
}

/** A prompt with its chosen and its rejected answer, each rendered whole (labels only on the answer). */
export interface PreferencePair {
  chosen: TokenizedExample;
  rejected: TokenizedExample;
}

export interface TrainingPairs {
  train: PreferencePair[];
  validation: PreferencePair[];
  /** Pairs with an answer that starts past the sequence length. */
  dropped: number;
}

/** Preference records (rendered as [chosen, rejected]) into pairs cut at the sequence length, split by record. */
export function preferencePairs(tokenized: TokenizedSource[], seqLen: number, split: SplitSettings): TrainingPairs {
  const parts = splitTrainValidation(tokenized, split.validation, split.seed);
  let dropped = 0;
  const prepare = (sources: TokenizedSource[]): PreferencePair[] =>
    sources.flatMap(({ sequences: [chosen, rejected] }) => {
      const pair = { chosen: truncate(chosen, seqLen), rejected: truncate(rejected, seqLen) };
      if (countLossTargets([pair.chosen.labels]) === 0 || countLossTargets([pair.rejected.labels]) === 0) {
        dropped++;
        return [];
      }
      return [pair];
    });
  return { train: prepare(parts.train), validation: prepare(parts.validation), dropped };
}
