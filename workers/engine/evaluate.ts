/**
 * An evaluation: contestants (the base model, this run's adapter, kept checkpoints', an imported one, another model)
 * answer every example with the same decoding settings and seed, several examples at once; each answer is scored by
 * the chosen metrics against the example's reference and by the scorers (a JavaScript rule, a reward model); each
 * model's perplexity of the references (or of raw text) is measured where asked; each contestant's scores are summed
 * up with a bootstrap interval, and every contestant after the first is compared with the first.
 */
import { lastUserTurn, type Message } from '../../core/dataset/formats';
import { comparePaired, type MeanInterval, meanWithInterval, type PairedComparison } from '../../core/eval/aggregate';
import { type EvalExample, perplexityTarget } from '../../core/eval/examples';
import { METRICS, type MeasureName, type MetricName, scoreInfo } from '../../core/eval/metrics';
import type { SamplingSettings } from '../../core/generation/sampling';
import type { RewardChoice } from './train/reward-choice';

/**
 * A model answering: its name in the table, and its adapter over the loaded model (none for its base); `other` is
 * the base of another model, read for its turn.
 */
export interface Contestant {
  name: string;
  adapter: 'none' | 'run' | 'imported' | { run: string; step: number };
  other?: true;
}

export interface EvalRequest {
  examples: EvalExample[];
  contestants: Contestant[];
  metrics: MetricName[];
  /** Each model's perplexity of the references (of raw text), as the measure `perplexity`. */
  perplexity?: boolean;
  /** A JavaScript rule `(prompt, completion, reference) => number`, scored as the measure `rule`. */
  rule?: string;
  /** A reward model scoring each answer (the Train step's reward choices), as the measure `reward`. */
  reward?: RewardChoice;
  sampling: SamplingSettings;
  maxNewTokens: number;
  seed: number;
  /** Most examples a model answers at once; by default as many as the decoder's memory allows, up to 8. */
  rows?: number;
}

export interface EvalAnswer {
  text: string;
  /** Per metric; null where the example has no reference to score against. */
  scores: Record<string, number | null>;
}

export interface EvalRow {
  id: string;
  /** The prompt's last user turn; a raw text's beginning. */
  prompt: string;
  reference: string | null;
  /** One per contestant, in their order. */
  answers: EvalAnswer[];
}

export interface EvalReport {
  contestants: Contestant[];
  /** The metrics scored, then the measures (`perplexity`, `rule`, `reward`). */
  metrics: string[];
  rows: EvalRow[];
  /** Each contestant's mean per metric, over the examples it has a score for. */
  summary: ({ contestant: string; metric: string } & MeanInterval)[];
  /** Each contestant after the first against the first, per metric, on the examples both have a score for. */
  versus: ({ contestant: string; against: string; metric: string } & PairedComparison)[];
  sampling: SamplingSettings;
  maxNewTokens: number;
  seed: number;
}

export interface EvalProgress {
  /** Answers written and perplexities measured, of all (examples × contestants). */
  done: number;
  total: number;
  /** From the pace so far; null before the first answer. */
  secondsLeft: number | null;
}

/** One contestant's model, ready: it answers several examples at once and measures perplexity. */
export interface Answerer {
  /** Most examples `answer` takes at once. */
  rows: number;
  /** The answer to each example's prompt, in order, with the request's decoding settings. */
  answer(examples: EvalExample[]): Promise<string[]>;
  /** Each example's perplexity of its reference after its prompt, or of its text (see perplexityTarget). */
  perplexity(examples: EvalExample[]): Promise<(number | null)[]>;
  /** Lets go of what the contestant's turn put on the GPU. */
  release(): void;
}

/** One answer as a scorer reads it. */
export interface ScoredAnswer {
  prompt: Message[];
  completion: string;
  reference: string | null;
}

/** A measure of answers beside the metrics: the rule, a reward model. */
export interface AnswerScorer {
  measure: MeasureName;
  score(answers: ScoredAnswer[]): Promise<number[]>;
}

export interface EvalRunner {
  /** The contestant's model, ready to answer. */
  answerer(contestant: Contestant): Promise<Answerer>;
  scorers?: AnswerScorer[];
  onProgress?: (progress: EvalProgress) => void;
  /** Checked between batches: true ends the evaluation early, with the examples every contestant finished. */
  stopped?: () => boolean;
}

/** Characters of a raw text the table shows as its prompt. */
const TEXT_SHOWN = 500;

/** Examples measured by perplexity at once (a forward each; only progress and stopping need them grouped). */
const PERPLEXITY_BATCH = 8;

/** Every reason the request cannot run: no contestants, nothing to ask or measure, an unknown metric. */
function requestProblems(request: EvalRequest, scorers: AnswerScorer[]): string[] {
  const problems: string[] = [];
  if (request.contestants.length === 0) problems.push('an evaluation needs at least one model to answer');
  if (request.examples.length === 0) problems.push('an evaluation needs examples: none of the records has a prompt');
  const unknown = request.metrics.filter((name) => !(name in METRICS));
  if (unknown.length > 0) {
    problems.push(`no metric ${unknown.join(', ')}: choose from ${Object.keys(METRICS).join(', ')}`);
  }
  if (request.metrics.length === 0 && scorers.length === 0 && !request.perplexity) {
    problems.push('choose at least one metric, perplexity, a rule or a reward model');
  }
  const { rows } = request;
  if (rows !== undefined && !(Number.isInteger(rows) && rows >= 1)) {
    problems.push(`examples answered at once must be a whole number of at least 1, not ${rows}`);
  }
  const answerable = request.examples.some((e) => e.text === undefined);
  if (!answerable && request.examples.length > 0 && !request.perplexity) {
    problems.push('raw text has no prompt to answer: measure its perplexity');
  }
  return problems;
}

/** Every example answered (and measured) by every contestant, one contestant after another, and scored; the summary. */
export async function evaluate(request: EvalRequest, runner: EvalRunner): Promise<EvalReport> {
  const { examples, contestants } = request;
  const scorers = runner.scorers ?? [];
  const problems = requestProblems(request, scorers);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const answers = request.metrics.length > 0 || scorers.length > 0;
  // Answered shortest prompt first, so a batch's rows end their prompts together; measured in order.
  const asked = answers ? examples.flatMap((e, i) => (e.text === undefined ? [i] : [])) : [];
  const promptLength = (i: number) => examples[i].prompt.reduce((n, m) => n + m.content.length, 0);
  asked.sort((a, b) => promptLength(a) - promptLength(b) || a - b);
  const measured = request.perplexity ? examples.flatMap((e, i) => (perplexityTarget(e) ? [i] : [])) : [];
  const total = (asked.length + measured.length) * contestants.length;
  const started = performance.now();
  const texts = contestants.map(() => new Map<number, string>());
  const perplexities = contestants.map(() => new Map<number, number | null>());
  let done = 0;
  const progress = (n: number) => {
    done += n;
    const seconds = (performance.now() - started) / 1000;
    runner.onProgress?.({ done, total, secondsLeft: (seconds / done) * (total - done) });
  };
  answering: for (const [c, contestant] of contestants.entries()) {
    if (runner.stopped?.()) break;
    const answerer = await runner.answerer(contestant);
    try {
      for (let first = 0; first < asked.length; first += answerer.rows) {
        if (runner.stopped?.()) break answering;
        const batch = asked.slice(first, first + answerer.rows);
        const said = await answerer.answer(batch.map((i) => examples[i]));
        for (const [k, i] of batch.entries()) texts[c].set(i, said[k]);
        progress(batch.length);
      }
      for (let first = 0; first < measured.length; first += PERPLEXITY_BATCH) {
        if (runner.stopped?.()) break answering;
        const batch = measured.slice(first, first + PERPLEXITY_BATCH);
        const values = await answerer.perplexity(batch.map((i) => examples[i]));
        for (const [k, i] of batch.entries()) perplexities[c].set(i, values[k]);
        progress(batch.length);
      }
    } finally {
      answerer.release();
    }
  }
  // The examples every contestant finished, in their order.
  const askedSet = new Set(asked);
  const measuredSet = new Set(measured);
  const finished = examples.flatMap((_, i) =>
    contestants.every(
      (_, c) => (!askedSet.has(i) || texts[c].has(i)) && (!measuredSet.has(i) || perplexities[c].has(i)),
    )
      ? [i]
      : [],
  );
  const rows: EvalRow[] = finished.map((i) => {
    const example = examples[i];
    const prompt = example.text === undefined ? lastUserTurn(example.prompt) : example.text.slice(0, TEXT_SHOWN);
    const scored = contestants.map((_, c) => {
      const text = texts[c].get(i);
      const scores: Record<string, number | null> = {};
      for (const name of request.metrics) {
        scores[name] =
          text === undefined || example.reference === null ? null : METRICS[name].score(text, example.reference);
      }
      if (request.perplexity) scores.perplexity = perplexities[c].get(i) ?? null;
      return { text: text ?? '', scores };
    });
    return { id: example.id, prompt, reference: example.reference, answers: scored };
  });
  for (const scorer of scorers) {
    // Every answer of the finished rows, scored at once (a reward model fills its batches).
    const which = rows.flatMap((row, r) => (askedSet.has(finished[r]) ? row.answers.map((a) => ({ r, a })) : []));
    const values = await scorer.score(
      which.map(({ r, a }) => {
        const example = examples[finished[r]];
        return { prompt: example.prompt, completion: a.text, reference: example.reference };
      }),
    );
    which.forEach(({ a }, k) => {
      a.scores[scorer.measure] = values[k];
    });
    for (const row of rows) for (const a of row.answers) a.scores[scorer.measure] ??= null;
  }
  const metrics = [...request.metrics, ...(request.perplexity ? ['perplexity'] : []), ...scorers.map((s) => s.measure)];
  const { sampling, maxNewTokens, seed } = request;
  return { ...summarize(contestants, metrics, rows), sampling, maxNewTokens, seed };
}

/** The summary and the comparisons of scored rows. */
function summarize(
  contestants: Contestant[],
  metrics: string[],
  rows: EvalRow[],
): Pick<EvalReport, 'contestants' | 'metrics' | 'rows' | 'summary' | 'versus'> {
  const scored = (i: number, metric: string) => rows.map((row) => row.answers[i].scores[metric] ?? null);
  const summary = contestants.flatMap((c, i) =>
    metrics.map((metric) => ({
      contestant: c.name,
      metric,
      ...meanWithInterval(scored(i, metric).filter((s): s is number => s !== null)),
    })),
  );
  const versus = contestants.slice(1).flatMap((c, k) =>
    metrics.map((metric) => {
      const a = scored(k + 1, metric);
      const b = scored(0, metric);
      const both = a.flatMap((s, j) => (s !== null && b[j] !== null ? [j] : []));
      const pair = comparePaired(
        both.map((j) => a[j] as number),
        both.map((j) => b[j] as number),
        { higherIsBetter: scoreInfo(metric).higherIsBetter },
      );
      return { contestant: c.name, against: contestants[0].name, metric, ...pair };
    }),
  );
  return { contestants, metrics, rows, summary, versus };
}
