/**
 * An evaluation: contestants (the base model, this run's adapter, a kept checkpoint's, an imported one) answer every
 * example with the same decoding settings and seed; each answer is scored by the chosen metrics against the
 * example's reference and, optionally, by a JavaScript rule (GRPO's sandboxed worker); each contestant's scores are
 * summed up with a bootstrap interval, and every contestant after the first is compared with the first.
 */
import type { Message } from '../../core/dataset/formats';
import { comparePaired, type MeanInterval, meanWithInterval, type PairedComparison } from '../../core/eval/aggregate';
import type { EvalExample } from '../../core/eval/examples';
import { METRICS, type MetricName } from '../../core/eval/metrics';
import type { SamplingSettings } from '../../core/generation/sampling';
import type { RewardSource } from './train/rewards';

/** A model answering: its name in the table, and its adapter (none for the base model). */
export interface Contestant {
  name: string;
  adapter: 'none' | 'run' | 'imported' | { run: string; step: number };
}

/** The name a rule's scores go under. */
export const RULE = 'rule';

export interface EvalRequest {
  examples: EvalExample[];
  contestants: Contestant[];
  metrics: MetricName[];
  /** A JavaScript rule `(prompt, completion, reference) => number`, scored as the metric `rule`. */
  rule?: string;
  sampling: SamplingSettings;
  maxNewTokens: number;
  seed: number;
}

export interface EvalAnswer {
  text: string;
  /** Per metric; null where the example has no reference to score against. */
  scores: Record<string, number | null>;
}

export interface EvalRow {
  id: string;
  /** The prompt's last user turn. */
  prompt: string;
  reference: string | null;
  /** One per contestant, in their order. */
  answers: EvalAnswer[];
}

export interface EvalReport {
  contestants: Contestant[];
  /** The metrics scored, the rule's as `rule`. */
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
  /** Answers written, of all (examples × contestants). */
  done: number;
  total: number;
  /** From the pace so far; null before the first answer. */
  secondsLeft: number | null;
}

export interface EvalRunner {
  /** Called before a contestant's answers (the CLI puts its adapter beside the model there). */
  use?(contestant: Contestant): Promise<void>;
  /** One answer to the conversation from the contestant's model, with the request's decoding settings. */
  answer(prompt: Message[], contestant: Contestant): Promise<string>;
  /** The rule as a scorer, when the request has one. */
  rule?: RewardSource;
  onProgress?: (progress: EvalProgress) => void;
  /** Checked between answers: true ends the evaluation early, with the examples every contestant answered. */
  stopped?: () => boolean;
}

function lastUserTurn(prompt: Message[]): string {
  return prompt.findLast((m) => m.role === 'user')?.content ?? '';
}

/** Every example answered by every contestant (one contestant after another) and scored; the summary. */
export async function evaluate(request: EvalRequest, runner: EvalRunner): Promise<EvalReport> {
  const { examples, contestants } = request;
  if (contestants.length === 0) throw new Error('an evaluation needs at least one model to answer');
  if (examples.length === 0) throw new Error('an evaluation needs examples: none of the records has a prompt');
  const unknown = request.metrics.filter((name) => !(name in METRICS));
  if (unknown.length > 0) {
    throw new Error(`no metric ${unknown.join(', ')}: choose from ${Object.keys(METRICS).join(', ')}`);
  }
  if (request.rule !== undefined && !runner.rule) throw new Error('the rule has no scorer');
  const total = examples.length * contestants.length;
  const started = performance.now();
  const texts: string[][] = contestants.map(() => []);
  let done = 0;
  answering: for (const [c, contestant] of contestants.entries()) {
    await runner.use?.(contestant);
    for (const example of examples) {
      if (runner.stopped?.()) break answering;
      texts[c].push(await runner.answer(example.prompt, contestant));
      done++;
      const seconds = (performance.now() - started) / 1000;
      runner.onProgress?.({ done, total, secondsLeft: (seconds / done) * (total - done) });
    }
  }
  const answered = Math.min(...texts.map((t) => t.length));
  const rows: EvalRow[] = [];
  for (const [e, example] of examples.slice(0, answered).entries()) {
    const prompt = lastUserTurn(example.prompt);
    const answers = texts.map((t) => {
      const scores: Record<string, number | null> = {};
      for (const name of request.metrics) {
        scores[name] = example.reference === null ? null : METRICS[name].score(t[e], example.reference);
      }
      return { text: t[e], scores };
    });
    if (runner.rule) {
      const reference = example.reference ?? undefined;
      const rewards = await runner.rule.score(answers.map((a) => ({ prompt, completion: a.text, reference, ids: [] })));
      answers.forEach((a, i) => {
        a.scores[RULE] = rewards[i];
      });
    }
    rows.push({ id: example.id, prompt, reference: example.reference, answers });
  }
  const metrics = [...request.metrics, ...(runner.rule ? [RULE] : [])];
  const { sampling, maxNewTokens, seed } = request;
  return { ...summarize(contestants, metrics, rows), sampling, maxNewTokens, seed };
}

/** The summary and the comparisons of scored rows (also after a reload, from the kept rows). */
export function summarize(
  contestants: Contestant[],
  metrics: string[],
  rows: EvalRow[],
): Pick<EvalReport, 'contestants' | 'metrics' | 'rows' | 'summary' | 'versus'> {
  const higher = (metric: string) => METRICS[metric as MetricName]?.higherIsBetter ?? true;
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
        { higherIsBetter: higher(metric) },
      );
      return { contestant: c.name, against: contestants[0].name, metric, ...pair };
    }),
  );
  return { contestants, metrics, rows, summary, versus };
}
