import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { loadDataset } from '../../core/dataset/load-dataset';
import { defaultScores, evalExamples } from '../../core/eval/examples';
import { formatScore, METRICS, type MetricName } from '../../core/eval/metrics';
import type { Contestant, EvalReport } from '../../workers/engine/evaluate';
import { EngineSession } from '../../workers/engine/session';
import { type Command, numberFlag } from '../command';
import { datasetFiles } from '../folder';
import { BASE_FLAG, basePrecisionFlag, modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';
import { spawnNodeRuleWorker } from '../rule-worker';
import { scoringReward } from '../run-inputs';

const MAX_NEW_TOKENS = 64;

/** The summary as a table: a row per contestant, a column per metric (mean [95% interval]); then each against the first. */
function summaryText(report: EvalReport): string {
  const names = report.contestants.map((c) => c.name);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const cell = (metric: string, name: string) => {
    const s = report.summary.find((x) => x.contestant === name && x.metric === metric);
    return s ? `${formatScore(metric, s.mean)} [${formatScore(metric, s.low)}, ${formatScore(metric, s.high)}]` : '';
  };
  const columns = report.metrics.map((metric) => {
    const cells = names.map((name) => cell(metric, name));
    return { metric, cells, width: Math.max(metric.length, ...cells.map((c) => c.length)) + 2 };
  });
  const lines = [`${''.padEnd(width)}${columns.map((c) => c.metric.padEnd(c.width)).join('')}`.trimEnd()];
  for (const [i, name] of names.entries()) {
    lines.push(`${name.padEnd(width)}${columns.map((c) => c.cells[i].padEnd(c.width)).join('')}`.trimEnd());
  }
  for (const v of report.versus) {
    const d = v.difference;
    lines.push(
      `${v.contestant} vs ${v.against}, ${v.metric}: ${v.wins} wins, ${v.ties} ties, ${v.losses} losses; ` +
        `difference ${formatScore(v.metric, d.mean)} [${formatScore(v.metric, d.low)}, ${formatScore(v.metric, d.high)}]`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `hone eval`: the base model, each adapter and optionally another model answer every example of the data files
 * with the same decoding settings and seed; each answer scored against the example's reference (and by a rule),
 * summed up with bootstrap intervals, each contestant against the base; the Evaluate view's code.
 */
export const evalCommand: Command = {
  usage:
    'hone eval --model M [--adapter A]... [--vs MODEL] --data FILE... [--metric NAME]... [--perplexity] ' +
    '[--rule FILE.js] [--reward-model DIR | --reward-onnx FILE] [--max-new-tokens N] [--batch N] [--out FILE.jsonl] ' +
    '[--json]',
  summary:
    "Scores the base model, each adapter and another model on the data's examples (the conversation up to its last " +
    'answer, that answer the reference): exact match, contains, ROUGE-L, chrF, perplexity (raw text too), a ' +
    'JavaScript rule and a reward model, with 95% bootstrap intervals and wins/ties/losses against the base.',
  flags: {
    model: { value: 'M', help: 'the base model' },
    ...BASE_FLAG,
    adapter: { value: 'DIR|ZIP', help: 'a PEFT adapter: the tuned model answers too', multiple: true },
    vs: { value: 'MODEL', help: 'another model whose base answers too (say, the next size up)' },
    data: { value: 'FILE', help: 'dataset files with prompts and reference answers', multiple: true },
    metric: {
      value: 'NAME',
      help:
        `a metric: ${Object.keys(METRICS).join(', ')} (default: those that fit the references: for short ` +
        'answers exactMatch, contains, chrF; for longer ones rougeL, chrF; for raw text perplexity)',
      multiple: true,
    },
    perplexity: { help: "each model's perplexity of the reference answers (of raw text: all of it); lower is better" },
    rule: { value: 'FILE.js', help: 'a JavaScript rule (prompt, completion, reference) => number, scored as "rule"' },
    'reward-model': { value: 'DIR|ZIP', help: 'a reward model adapter (trained with --method rm) scoring each answer' },
    'reward-onnx': { value: 'FILE', help: 'an ONNX sequence-classification reward model scoring each answer' },
    'max-new-tokens': { value: 'N', help: 'the longest answer in tokens', default: MAX_NEW_TOKENS },
    batch: { value: 'N', help: 'examples a model answers at once (default: up to 8, as memory allows)' },
    temperature: { value: 'T', help: 'sampling temperature; 0 is greedy', default: 0 },
    seed: { value: 'S', help: 'seeds the sampling', default: 0 },
    out: { value: 'FILE.jsonl', help: "every example's prompt, reference, answers and scores, a line each" },
    json: { help: 'print the summary as JSON' },
  },
  async run({ values }) {
    const data = values.data as string[];
    if (!values.model || data.length === 0) throw new Error(`usage: ${evalCommand.usage}`);
    const dataset = await loadDataset(await datasetFiles(data));
    for (const issue of dataset.issues) process.stderr.write(`skipped ${issue.file}:${issue.line}: ${issue.reason}\n`);
    const { examples, skipped } = evalExamples(dataset.examples);
    const chosen = values.metric as string[];
    const fitting = defaultScores(examples);
    // --metric and --perplexity replace the default scores; a rule and a reward model score beside them.
    const given = chosen.length > 0 || values.perplexity === true;
    const metrics = (given ? chosen : fitting.metrics) as MetricName[];
    const perplexity = values.perplexity === true || (!given && fitting.perplexity);
    const reward = await scoringReward(values);
    if (skipped > 0)
      process.stderr.write(`records with nothing to answer (no answer to measure), left out: ${skipped}\n`);
    const model = modelSource(String(values.model));
    const adapters = (values.adapter as string[]).map(modelSource);
    const vs = values.vs === undefined ? null : modelSource(String(values.vs));
    const contestants: Contestant[] = [
      { name: model.label, adapter: 'none' },
      ...adapters.map((a) => ({ name: a.label, adapter: 'imported' as const })),
      ...(vs ? [{ name: vs.label, adapter: 'none' as const, other: true as const }] : []),
    ];
    if (new Set(contestants.map((c) => c.name)).size < contestants.length) {
      throw new Error('two contestants have the same name: give each adapter and model its own folder');
    }
    const session = new EngineSession({ acquire: () => acquireNodeGpu(), spawnRuleWorker: spawnNodeRuleWorker });
    try {
      await session.loadFrom(model.read, model.label, basePrecisionFlag(values));
      // Each adapter read and checked against the model now, not after the models before it have answered.
      for (const adapter of adapters) await session.importAdapterFrom(adapter.read, adapter.label);
      const request = {
        examples,
        contestants,
        metrics,
        perplexity,
        reward,
        rows: numberFlag(values, 'batch'),
        rule: typeof values.rule === 'string' ? await readFile(values.rule, 'utf8') : undefined,
        sampling: { temperature: numberFlag(values, 'temperature') ?? 0, topK: 0, topP: 1, repetitionPenalty: 1 },
        maxNewTokens: numberFlag(values, 'max-new-tokens') ?? MAX_NEW_TOKENS,
        seed: numberFlag(values, 'seed') ?? 0,
      };
      const report = await session.evaluate(request, {
        onProgress: (p) => {
          const left = p.secondsLeft === null ? '' : `, about ${Math.ceil(p.secondsLeft)} s left`;
          process.stderr.write(`\rdone ${p.done} of ${p.total}${left}   `);
        },
        use: async (contestant) => {
          const adapter = adapters.find((a) => a.label === contestant.name);
          if (adapter) await session.importAdapterFrom(adapter.read, adapter.label);
        },
        other: vs ?? undefined,
      });
      process.stderr.write('\n');
      if (typeof values.out === 'string') {
        const lines = report.rows.map((row) =>
          JSON.stringify({
            ...row,
            answers: Object.fromEntries(row.answers.map((a, i) => [report.contestants[i].name, a])),
          }),
        );
        await writeFile(values.out, `${lines.join('\n')}\n`);
        process.stderr.write(`wrote ${report.rows.length} examples to ${basename(values.out)}\n`);
      }
      const { summary, versus } = report;
      process.stdout.write(values.json ? `${JSON.stringify({ summary, versus })}\n` : summaryText(report));
      return 0;
    } finally {
      session.close();
    }
  },
};
