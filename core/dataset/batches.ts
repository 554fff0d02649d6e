/**
 * Tokenized examples into what training consumes: a seeded train/validation split, raw-text documents packed into
 * fixed-length blocks, long sequences truncated, and fixed-shape batches padded with labels the loss ignores.
 * Also the token-length statistics the Data step shows.
 */
import { mulberry32 } from '../random';
import { IGNORE_INDEX, type TokenizedExample } from './render';

/**
 * A seeded shuffle split. `validation` is a fraction of the items when below 1, else a count; at least one item
 * stays for training.
 */
export function splitTrainValidation<T>(items: T[], validation: number, seed: number): { train: T[]; validation: T[] } {
  if (!(validation >= 0)) throw new Error(`the validation size must be 0 or more, not ${validation}`);
  const order = items.map((_, i) => i);
  const next = mulberry32(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const wanted = validation < 1 ? Math.round(items.length * validation) : Math.floor(validation);
  const count = Math.min(wanted, Math.max(0, items.length - 1));
  const held = new Set(order.slice(0, count));
  return {
    train: items.filter((_, i) => !held.has(i)),
    validation: order
      .slice(0, count)
      .sort((a, b) => a - b)
      .map((i) => items[i]),
  };
}

/**
 * Continued pretraining: documents (each already ending in EOS) joined and cut into blocks of `length` tokens, every
 * token a label. The remainder becomes a last, shorter block, so a small dataset still trains.
 */
export function packBlocks(documents: number[][], length: number): TokenizedExample[] {
  if (!(length >= 2)) throw new Error(`the block length must be at least 2 tokens, not ${length}`);
  const blocks: TokenizedExample[] = [];
  let current: number[] = [];
  for (const document of documents) {
    for (const id of document) {
      current.push(id);
      if (current.length === length) {
        blocks.push({ ids: current, labels: current.slice() });
        current = [];
      }
    }
  }
  if (current.length >= 2) blocks.push({ ids: current, labels: current.slice() });
  return blocks;
}

/** The first `maxLength` tokens. */
export function truncate(example: TokenizedExample, maxLength: number): TokenizedExample {
  if (example.ids.length <= maxLength) return example;
  return { ids: example.ids.slice(0, maxLength), labels: example.labels.slice(0, maxLength) };
}

export interface Batch {
  tokens: number[][];
  labels: number[][];
}

/**
 * Examples as one [batch][seqLength] batch: each truncated to seqLength and padded with `padId`, whose labels are
 * IGNORE_INDEX so padding never carries loss.
 */
export function padBatch(examples: TokenizedExample[], seqLength: number, padId: number): Batch {
  const tokens: number[][] = [];
  const labels: number[][] = [];
  for (const example of examples) {
    const { ids, labels: l } = truncate(example, seqLength);
    const padding = seqLength - ids.length;
    tokens.push([...ids, ...new Array<number>(padding).fill(padId)]);
    labels.push([...l, ...new Array<number>(padding).fill(IGNORE_INDEX)]);
  }
  return { tokens, labels };
}

/** How many positions of a batch carry loss: labels after the first position (each predicted from the one before). */
export function countLossTargets(labels: number[][]): number {
  let n = 0;
  for (const row of labels) for (let t = 1; t < row.length; t++) if (row[t] !== IGNORE_INDEX) n++;
  return n;
}

export interface LengthStats {
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p95: number;
  /** How many are longer than the max length and would be cut. */
  truncated: number;
  /** Equal-width bins from min to max. */
  histogram: { from: number; to: number; count: number }[];
}

export function lengthStats(lengths: number[], maxLength: number, bins = 20): LengthStats {
  if (lengths.length === 0) {
    return { count: 0, min: 0, max: 0, mean: 0, median: 0, p95: 0, truncated: 0, histogram: [] };
  }
  const sorted = Float64Array.from(lengths).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const min = sorted[0];
  const max = sorted[sorted.length - 1];
  const width = Math.max(1, Math.ceil((max - min + 1) / bins));
  const histogram = Array.from({ length: Math.ceil((max - min + 1) / width) }, (_, i) => ({
    from: min + i * width,
    to: min + (i + 1) * width - 1,
    count: 0,
  }));
  for (const length of lengths) histogram[Math.floor((length - min) / width)].count++;
  return {
    count: lengths.length,
    min,
    max,
    mean: lengths.reduce((a, b) => a + b, 0) / lengths.length,
    median: at(0.5),
    p95: at(0.95),
    truncated: lengths.filter((l) => l > maxLength).length,
    histogram,
  };
}
