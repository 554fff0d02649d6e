import { describe, expect, it } from 'vitest';
import type { EvalExample } from '../../core/eval/examples';
import { type Contestant, type EvalRequest, evaluate, RULE } from './evaluate';
import type { RewardSample } from './train/rewards';

const examples: EvalExample[] = [
  { id: 'a.jsonl:1', prompt: [{ role: 'user', content: 'Capital of Peru?' }], reference: 'Lima' },
  { id: 'a.jsonl:2', prompt: [{ role: 'user', content: 'Capital of Chile?' }], reference: 'Santiago' },
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

describe('an evaluation', () => {
  it('scores every answer, sums each contestant up and compares it with the first', async () => {
    const asked: string[] = [];
    const used: string[] = [];
    const report = await evaluate(request, {
      use: async (c) => void used.push(c.name),
      answer: async (prompt, c) => {
        asked.push(`${c.name}: ${prompt.at(-1)?.content}`);
        return ANSWERS[c.name][examples.findIndex((e) => e.prompt === prompt)];
      },
    });
    expect(used).toEqual(['base', 'tuned']);
    expect(asked).toHaveLength(6);
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

  it('a rule scores every answer, references or not', async () => {
    const seen: RewardSample[] = [];
    const report = await evaluate(
      { ...request, metrics: [], rule: '(p, c) => c.length' },
      {
        answer: async (prompt, c) => ANSWERS[c.name][examples.findIndex((e) => e.prompt === prompt)],
        rule: {
          name: 'length',
          score: async (samples) => {
            seen.push(...samples);
            return samples.map((s) => s.completion.length);
          },
          destroy: () => {},
        },
      },
    );
    expect(report.metrics).toEqual([RULE]);
    expect(report.rows.map((r) => r.answers.map((a) => a.scores[RULE]))).toEqual([
      [11, 4],
      [10, 8],
      [5, 2],
    ]);
    expect(seen[0]).toMatchObject({ prompt: 'Capital of Peru?', completion: 'It is Lima.', reference: 'Lima' });
    expect(seen[4].reference).toBeUndefined();
  });

  it('stopped, keeps the examples every contestant answered; refuses what it cannot run', async () => {
    let answers = 0;
    const report = await evaluate(request, {
      answer: async () => {
        answers++;
        return 'Lima';
      },
      stopped: () => answers >= 4,
    });
    expect(report.rows.map((r) => r.id)).toEqual(['a.jsonl:1']);
    await expect(evaluate({ ...request, examples: [] }, { answer: async () => '' })).rejects.toThrow('needs examples');
    await expect(evaluate({ ...request, metrics: ['bleu' as never] }, { answer: async () => '' })).rejects.toThrow(
      'no metric bleu',
    );
  });
});
