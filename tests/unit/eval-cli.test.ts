/**
 * `hone eval` on a task the demo model cannot know (code words mapped at random): after a short run of `hone train`,
 * the tuned model answers them exactly and the base does not; another model and a rule take part too.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CODE_WORDS, codeWordsJsonl } from '../helpers/datasets';
import { hone } from '../helpers/hone-cli';
import { tempDir } from '../helpers/model-folder';

let dir: string;
let data: string;

beforeAll(async () => {
  dir = await tempDir('hone-eval-');
  data = join(dir, 'codes.jsonl');
  await writeFile(data, codeWordsJsonl());
});

interface Summary {
  summary: { contestant: string; metric: string; mean: number; low: number; high: number; n: number }[];
  versus: { contestant: string; against: string; metric: string; wins: number; ties: number; losses: number }[];
}

describe('hone eval', () => {
  it('scores a tuned model above its base on a mapping only training teaches, with intervals and a rule', async () => {
    const run = join(dir, 'run');
    const trained = await hone(
      'train',
      '--model',
      'hone-tiny',
      '--data',
      data,
      '--method',
      'sft',
      '--out',
      run,
      '--max-steps',
      '40',
      '--validation',
      '0',
      '--batch-size',
      '6',
      '--lr',
      '0.005',
      '--schedule',
      'constant',
      '--warmup',
      '2',
    );
    expect(trained.code, trained.stderr).toBe(0);
    // Another model: a copy of the base, which must answer as the base does.
    const other = join(dir, 'other');
    await cp('public/models/hone-tiny', other, { recursive: true });
    const rule = join(dir, 'rule.js');
    await writeFile(rule, '(prompt, completion, reference) => (completion.trim() === reference ? 1 : 0)');
    const out = join(dir, 'answers.jsonl');
    const result = await hone(
      'eval',
      '--model',
      'hone-tiny',
      '--adapter',
      run,
      '--vs',
      other,
      '--data',
      data,
      '--metric',
      'exactMatch',
      '--metric',
      'chrF',
      '--perplexity',
      '--rule',
      rule,
      '--max-new-tokens',
      '6',
      '--out',
      out,
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const { summary, versus } = JSON.parse(result.stdout) as Summary;
    const mean = (contestant: string, metric: string) =>
      summary.find((s) => s.contestant === contestant && s.metric === metric);
    expect(mean(run, 'exactMatch')?.mean).toBeGreaterThanOrEqual(5 / 6);
    expect(mean('hone-tiny', 'exactMatch')?.mean).toBe(0);
    expect(mean(run, 'rule')?.mean).toBe(mean(run, 'exactMatch')?.mean);
    // Training made the code words far less surprising to the tuned model.
    expect(mean(run, 'perplexity')?.mean).toBeLessThan((mean('hone-tiny', 'perplexity')?.mean ?? 0) / 4);
    expect(versus.find((v) => v.contestant === run && v.metric === 'perplexity')?.wins).toBe(6);
    expect(mean(run, 'exactMatch')?.n).toBe(6);
    expect(versus.find((v) => v.contestant === run && v.metric === 'exactMatch')?.wins).toBeGreaterThanOrEqual(5);

    const rows = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(rows.map((r) => r.reference)).toEqual(CODE_WORDS.map(([, code]) => code));
    expect(rows[0].prompt).toBe('Code word for amber?');
    for (const row of rows) expect(row.answers[other].text).toBe(row.answers['hone-tiny'].text);

    const table = await hone(
      'eval',
      '--model',
      'hone-tiny',
      '--adapter',
      run,
      '--data',
      data,
      '--metric',
      'exactMatch',
      '--batch',
      '1',
    );
    expect(table.stdout).toMatch(new RegExp(`^${run.replace(/[/.]/g, '\\$&')}\\s+(0\\.833|1\\.000) \\[`, 'm'));
    expect(table.stdout).toMatch(/vs hone-tiny, exactMatch: [56] wins/);
  }, 900_000);

  it('refuses an unknown metric by name, names each record it skips, and measures raw text by perplexity', async () => {
    const unknown = await hone('eval', '--model', 'hone-tiny', '--data', data, '--metric', 'bleu');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no metric bleu: choose from exactMatch, contains, rougeL, chrF');
    const broken = join(dir, 'broken.jsonl');
    await writeFile(broken, `${codeWordsJsonl().split('\n')[0]}\n{"messages": [ broken\n`);
    const skipped = await hone('eval', '--model', 'hone-tiny', '--data', broken, '--max-new-tokens', '2');
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toContain('skipped broken.jsonl:2: malformed JSON');
    const text = join(dir, 'book.txt');
    await writeFile(text, 'Call me Ishmael.');
    // Raw text has nothing to answer: its perplexity is measured.
    const measured = await hone('eval', '--model', 'hone-tiny', '--data', text, '--json');
    expect(measured.code, measured.stderr).toBe(0);
    const { summary } = JSON.parse(measured.stdout) as Summary;
    expect(summary).toMatchObject([{ contestant: 'hone-tiny', metric: 'perplexity', n: 1 }]);
    expect(summary[0].mean).toBeGreaterThan(1);
    const unanswerable = await hone('eval', '--model', 'hone-tiny', '--data', text, '--metric', 'exactMatch');
    expect(unanswerable.code).toBe(1);
    expect(unanswerable.stderr).toContain('raw text has no prompt to answer: measure its perplexity');
  });
});
