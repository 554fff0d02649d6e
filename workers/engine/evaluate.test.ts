import { describe, expect, it } from 'vitest';
import type { EvalExample } from '../../core/eval/examples';
import {
  type Answerer,
  type AnswerScorer,
  type Contestant,
  type EvalRequest,
  evaluate,
  type ScoredAnswer,
} from './evaluate';

const examples: EvalExample[] = [
  { id: 'a.jsonl:1', prompt: [{ role: 'user', content: 'Capital of Peru?' }], reference: 'Lima' },
  { id: 'a.jsonl:2', prompt: [{ role: 'user', content: 'Capital of Chile, please?' }], reference: 'Santiago' },
  { id: 'a.jsonl:3', prompt: [{ role: 'user', content: 'Say hi.' }], reference: null },
];
const contestants: Contestant[] = [
  { name: 'base', adapter: 'none' },
  { name: 'tuned', adapter: 'run' },
];
const request: EvalRequest = {
  examples,
  contestants,
  metrics: ['exactMatch', 'chrF'],
  sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  maxNewTokens: 8,
  seed: 0,
};
const ANSWERS: Record<string, string[]> = {
  base: ['It is Lima.', 'Valparaiso', 'hello'],
  tuned: ['Lima', 'Santiago', 'hi'],
};
/** Made-up perplexities per contestant, by example. */
const PERPLEXITY: Record<string, number[]> = { base: [9, 12, 4], tuned: [3, 2, 4] };

/** A contestant's answerer from the tables above, `rows` at a time, noting every batch it was asked. */
function answererFor(c: Contestant, rows: number, batches: string[][] = [], released: string[] = []): Answerer {
  return {
    rows,
    answer: async (batch) => {
      batches.push(batch.map((e) => e.id));
      return batch.map((e) => ANSWERS[c.name][examples.indexOf(e)]);
    },
    perplexity: async (batch) => batch.map((e) => PERPLEXITY[c.name][examples.indexOf(e)]),
    release: () => void released.push(c.name),
  };
}

describe('an evaluation', () => {
  it('answers in batches, shortest prompt first, scores every answer, sums each contestant up against the first', async () => {
    const batches: string[][] = [];
    const released: string[] = [];
    const report = await evaluate(request, { answerer: async (c) => answererFor(c, 2, batches, released) });
    expect(batches).toEqual([['a.jsonl:3', 'a.jsonl:1'], ['a.jsonl:2'], ['a.jsonl:3', 'a.jsonl:1'], ['a.jsonl:2']]);
    expect(released).toEqual(['base', 'tuned']);
    // Rows in the examples' order, whatever order they were answered in.
    expect(report.rows.map((r) => r.id)).toEqual(['a.jsonl:1', 'a.jsonl:2', 'a.jsonl:3']);
    expect(report.rows.map((r) => r.answers.map((a) => a.scores.exactMatch))).toEqual([
      [0, 1],
      [0, 1],
      [null, null],
    ]);
    const mean = (contestant: string, metric: string) =>
      report.summary.find((s) => s.contestant === contestant && s.metric === metric)?.mean;
    expect(mean('base', 'exactMatch')).toBe(0);
    expect(mean('tuned', 'exactMatch')).toBe(1);
    expect(report.summary.find((s) => s.contestant === 'tuned')?.n).toBe(2);
    const versus = report.versus.find((v) => v.metric === 'exactMatch');
    expect(versus).toMatchObject({ contestant: 'tuned', against: 'base', wins: 2, ties: 0, losses: 0 });
    expect(report.versus.find((v) => v.metric === 'chrF')?.difference.mean).toBeGreaterThan(30);
  });

  it('measures perplexity, lower counted better, and raw text by perplexity alone', async () => {
    const text: EvalExample = { id: 'book.txt:1', prompt: [], reference: null, text: 'Call me Ishmael.' };
    const measured: string[] = [];
    const report = await evaluate(
      { ...request, examples: [...examples, text], metrics: [], perplexity: true },
      {
        answerer: async (c) => ({
          ...answererFor(c, 4),
          answer: async () => {
            throw new Error('perplexity alone answers nothing');
          },
          perplexity: async (batch) => {
            measured.push(...batch.map((e) => e.id));
            return batch.map((e) => (e === text ? 7 : PERPLEXITY[c.name][examples.indexOf(e)]));
          },
        }),
      },
    );
    // The example without a reference has nothing to measure; the text does.
    expect(measured).toEqual(['a.jsonl:1', 'a.jsonl:2', 'book.txt:1', 'a.jsonl:1', 'a.jsonl:2', 'book.txt:1']);
    expect(report.metrics).toEqual(['perplexity']);
    expect(report.rows.map((r) => r.answers.map((a) => a.scores.perplexity))).toEqual([
      [9, 3],
      [12, 2],
      [null, null],
      [7, 7],
    ]);
    expect(report.rows[3].prompt).toBe('Call me Ishmael.');
    expect(report.versus[0]).toMatchObject({ metric: 'perplexity', wins: 2, ties: 1, losses: 0 });
    await expect(
      evaluate({ ...request, examples: [text] }, { answerer: async (c) => answererFor(c, 1) }),
    ).rejects.toThrow('raw text has no prompt to answer: measure its perplexity');
  });

  it('scorers (a rule, a reward model) score every answer at once, references or not', async () => {
    const seen: ScoredAnswer[] = [];
    const length: AnswerScorer = {
      measure: 'rule',
      score: async (answers) => {
        seen.push(...answers);
        return answers.map((a) => a.completion.length);
      },
    };
    const report = await evaluate(
      { ...request, metrics: [] },
      { answerer: async (c) => answererFor(c, 8), scorers: [length] },
    );
    expect(report.metrics).toEqual(['rule']);
    expect(report.rows.map((r) => r.answers.map((a) => a.scores.rule))).toEqual([
      [11, 4],
      [10, 8],
      [5, 2],
    ]);
    expect(seen[0]).toMatchObject({ completion: 'It is Lima.', reference: 'Lima' });
    expect(seen[0].prompt).toBe(examples[0].prompt);
    expect(seen[5].reference).toBeNull();
  });

  it('stopped, keeps the examples every contestant answered; refuses what it cannot run', async () => {
    let batches = 0;
    const report = await evaluate(request, {
      answerer: async (c) => {
        const inner = answererFor(c, 1);
        const answer = (batch: EvalExample[]) => {
          batches++;
          return inner.answer(batch);
        };
        return { ...inner, answer };
      },
      stopped: () => batches >= 4,
    });
    // Shortest first: the base answered all three, the tuned model example 3 only.
    expect(report.rows.map((r) => r.id)).toEqual(['a.jsonl:3']);
    const runner = { answerer: async (c: Contestant) => answererFor(c, 1) };
    await expect(evaluate({ ...request, examples: [] }, runner)).rejects.toThrow('needs examples');
    await expect(evaluate({ ...request, metrics: ['bleu' as never] }, runner)).rejects.toThrow('no metric bleu');
    await expect(evaluate({ ...request, metrics: [] }, runner)).rejects.toThrow('choose at least one metric');
    await expect(evaluate({ ...request, rows: 0 }, runner)).rejects.toThrow('at least 1, not 0');
  });
});
