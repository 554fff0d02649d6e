/**
 * Per-example scores summed up: a contestant's mean with a bootstrap confidence interval, and two contestants
 * compared on the same examples.
 */
import { mulberry32 } from '../random';

export interface BootstrapOptions {
  /** Resamples B (1000). */
  resamples?: number;
  /** Coverage of the interval (0.95). */
  confidence?: number;
  /** Seed of core/random.ts's generator: the same seed and scores give the same interval (12345). */
  seed?: number;
}

export interface MeanInterval {
  n: number;
  /** NaN, and so are low and high, when there are no scores. */
  mean: number;
  low: number;
  high: number;
}

/** Σ xᵢ / n. */
export function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/**
 * q-quantile of ascending `sorted` by linear interpolation between closest ranks: position q·(n − 1) (NumPy's
 * default).
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
}

/**
 * mean ± percentile bootstrap: B means of n scores drawn with replacement, sorted; the interval is their
 * (1 − c)/2 and (1 + c)/2 quantiles.
 */
export function meanWithInterval(scores: readonly number[], options: BootstrapOptions = {}): MeanInterval {
  const { resamples = 1000, confidence = 0.95, seed = 12345 } = options;
  const n = scores.length;
  assertFinite(scores);
  const center = mean(scores);
  if (n === 0) return { n, mean: Number.NaN, low: Number.NaN, high: Number.NaN };
  const next = mulberry32(seed);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += scores[Math.floor(next() * n)];
    means[b] = sum / n;
  }
  means.sort();
  const tail = (1 - confidence) / 2;
  return { n, mean: center, low: quantile(means, tail), high: quantile(means, 1 - tail) };
}

/** Scores within this of each other are a tie. */
export const TIE_TOLERANCE = 1e-9;

export interface PairedComparison {
  n: number;
  /** Examples where a scored better than b (higher, or lower where lower is better), */
  wins: number;
  /** within TIE_TOLERANCE of b, */
  ties: number;
  /** or worse. */
  losses: number;
  /** mean(aᵢ − bᵢ) with its paired bootstrap interval. */
  difference: MeanInterval;
}

/**
 * dᵢ = aᵢ − bᵢ on the same examples: wins / ties / losses by the sign of dᵢ (|dᵢ| ≤ 1e-9 a tie), and the bootstrap
 * interval of mean(d), resampling examples (both scores of an example together).
 * Pairing removes the spread between easy and hard examples, so a real difference shows with fewer examples.
 */
export function comparePaired(
  a: readonly number[],
  b: readonly number[],
  options: BootstrapOptions & { higherIsBetter?: boolean } = {},
): PairedComparison {
  if (a.length !== b.length) throw new Error(`paired scores differ in length: ${a.length} and ${b.length}`);
  const { higherIsBetter = true, ...bootstrap } = options;
  assertFinite(a);
  assertFinite(b);
  const differences = a.map((value, i) => value - b[i]);
  let wins = 0;
  let ties = 0;
  let losses = 0;
  for (const d of differences) {
    if (Math.abs(d) <= TIE_TOLERANCE) ties++;
    else if (d > 0 === higherIsBetter) wins++;
    else losses++;
  }
  return { n: a.length, wins, ties, losses, difference: meanWithInterval(differences, bootstrap) };
}

/** A NaN or infinite score is a scoring bug: it would silently count as a loss or poison the mean. */
function assertFinite(scores: readonly number[]): void {
  const bad = scores.findIndex((score) => !Number.isFinite(score));
  if (bad >= 0) throw new Error(`score ${bad} is not a finite number: ${scores[bad]}`);
}
