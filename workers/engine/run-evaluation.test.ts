/**
 * Evaluations on the GPU through the engine session, on hone-tiny with a random adapter: several examples decoded at
 * once answer as each alone does (and as the Compare step's chat does); perplexity is the float64 reference's, long
 * texts read in windows; another model answers for its turn; a reward model scores each answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { acquireNodeGpu } from '../../cli/node-gpu';
import { spawnNodeRuleWorker } from '../../cli/rule-worker';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { renderChat, renderText } from '../../core/dataset/render';
import type { EvalExample } from '../../core/eval/examples';
import { type ModelConfig, PROJECTIONS } from '../../core/model-config';
import { loadTokenizer, type ModelTokenizer } from '../../core/tokenizer';
import { randomRewardModel, tempDir, writeAdapterFolder } from '../../tests/helpers/model-folder';
import { referenceLogits } from '../../tests/helpers/reference-greedy';
import type { EvalRequest } from './evaluate';
import type { Gpu } from './gpu/device';
import { EngineKernels } from './model/kernels';
import { RewardScorer } from './model/reward-scorer';
import { filesReader } from './model-loader';
import type { ReferenceLora } from './reference/model.cpu';
import { randomLora } from './reference/random-model';
import { EngineSession } from './session';
import { uploadChecked } from './upload-weights';

const HONE_TINY = 'public/models/hone-tiny';

let gpu: Gpu | undefined;
const session = new EngineSession({
  acquire: async () => {
    gpu = await acquireNodeGpu();
    return gpu;
  },
  spawnRuleWorker: spawnNodeRuleWorker,
});
let config: ModelConfig;
let weights: Map<string, Float64Array>;
let tokenizer: ModelTokenizer;
let lora: ReferenceLora;

beforeAll(async () => {
  const read = folderReader(HONE_TINY);
  const checkpoint = await loadCheckpoint(read, 'hone-tiny');
  config = checkpoint.config;
  weights = new Map();
  for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
  tokenizer = await loadTokenizer(read, 'hone-tiny');
  await session.loadFrom(read, 'hone-tiny');
  lora = randomLora(config, [...PROJECTIONS], 4, 8, false, 21);
  const dir = await writeAdapterFolder(await tempDir('hone-eval-'), lora, [...PROJECTIONS]);
  await session.importAdapterFrom(folderReader(dir), 'random');
});

afterAll(() => {
  session.close();
  gpu?.device.destroy();
});

const QUESTIONS = [
  'Hi.',
  'What is the capital of France?',
  'Name three colours of the rainbow, in order, and say which one comes last.',
  'Why?',
  'Tell me a story about a small robot that learns to paint.',
  'Two plus two?',
  'Spell the word history backwards, one letter at a time, with commas.',
];
const examples: EvalExample[] = QUESTIONS.map((q, i) => ({
  id: `q.jsonl:${i + 1}`,
  prompt: [{ role: 'user', content: q }],
  reference: 'Paris is the answer.',
}));
const request: EvalRequest = {
  examples,
  contestants: [
    { name: 'base', adapter: 'none' },
    { name: 'random', adapter: 'imported' },
  ],
  metrics: ['chrF'],
  sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  maxNewTokens: 10,
  seed: 0,
};
const texts = (report: { rows: { answers: { text: string }[] }[] }) =>
  report.rows.map((r) => r.answers.map((a) => a.text));

/** exp(mean CE) of the labelled tokens as the float64 reference computes them, a window of `window` tokens at a time. */
function referencePerplexity(ids: number[], labels: number[], adapter: ReferenceLora | null, window: number): number {
  let sum = 0;
  let count = 0;
  for (let start = 0; start + 1 < ids.length; start += window) {
    const tokens = ids.slice(start, start + window);
    const logits = referenceLogits(config, weights, adapter, tokens);
    const V = config.vocabSize;
    tokens.forEach((_, t) => {
      const target = labels[start + t + 1];
      if (target === undefined || target < 0) return;
      const row = logits.subarray(t * V, (t + 1) * V);
      let max = -Infinity;
      for (const l of row) max = Math.max(max, l);
      let total = 0;
      for (const l of row) total += Math.exp(l - max);
      sum += Math.log(total) + max - row[target];
      count++;
    });
  }
  return Math.exp(sum / count);
}

describe('evaluating on the GPU', () => {
  it('answers several examples at once as it answers each alone, greedily, and as the chat does', async () => {
    const alone = await session.evaluate({ ...request, rows: 1 });
    const together = await session.evaluate({ ...request, rows: 4 });
    const byDefault = await session.evaluate(request);
    expect(texts(together)).toEqual(texts(alone));
    expect(texts(byDefault)).toEqual(texts(alone));
    // The prompts' lengths differ, the answers are not empty, and the adapter changes them.
    expect(new Set(examples.map((e) => renderChat(tokenizer, e.prompt).ids.length)).size).toBeGreaterThan(4);
    expect(texts(alone).every(([base, tuned]) => base.length > 0 && tuned.length > 0)).toBe(true);
    expect(texts(alone).some(([base, tuned]) => base !== tuned)).toBe(true);
    const { sampling, maxNewTokens, seed } = request;
    const chat = await session.generate(
      { prompt: { messages: examples[4].prompt }, adapter: 'imported', sampling, maxNewTokens, seed },
      () => {},
    );
    expect(chat.text).toBe(texts(alone)[4][1]);
  });

  it("measures perplexity as the float64 reference does, the adapter's too, a long text in windows", async () => {
    const long = Array.from({ length: 90 }, (_, i) => `Sentence ${i} tells of the rivers and the hills.`).join(' ');
    const measured: EvalExample[] = [
      examples[1],
      examples[4],
      { id: 'book.txt:1', prompt: [], reference: null, text: long },
    ];
    const report = await session.evaluate({ ...request, examples: measured, metrics: [], perplexity: true });
    expect(report.metrics).toEqual(['perplexity']);
    const sequences = [
      renderChat(tokenizer, [...examples[1].prompt, { role: 'assistant', content: 'Paris is the answer.' }]),
      renderChat(tokenizer, [...examples[4].prompt, { role: 'assistant', content: 'Paris is the answer.' }]),
      (() => {
        const ids = renderText(tokenizer, long);
        return { ids, labels: ids };
      })(),
    ];
    // The text spans more than one 512-token window.
    expect(sequences[2].ids.length).toBeGreaterThan(600);
    for (const [c, adapter] of [null, lora].entries()) {
      const got = report.rows.map((row) => row.answers[c].scores.perplexity as number);
      const expected = sequences.map(({ ids, labels }) => referencePerplexity(ids, labels, adapter, 512));
      for (const [i, value] of got.entries()) expect(Math.abs(value / expected[i] - 1)).toBeLessThan(2e-4);
    }
    const perplexityOf = (c: number) => report.rows.map((row) => row.answers[c].scores.perplexity);
    expect(perplexityOf(0)).not.toEqual(perplexityOf(1));
  });

  it('another model answers for its turn; a reward model scores each answer', async () => {
    const rewardFiles = randomRewardModel(config, 3).map(({ path, bytes }) => ({ path, file: new Blob([bytes]) }));
    const report = await session.evaluate(
      {
        ...request,
        examples: examples.slice(0, 3),
        contestants: [...request.contestants, { name: 'hone-tiny again', adapter: 'none', other: true }],
        reward: { kind: 'reward-model', name: 'random rm', files: rewardFiles },
      },
      { other: { label: 'hone-tiny again', read: folderReader(HONE_TINY) } },
    );
    expect(report.metrics).toEqual(['chrF', 'reward']);
    // The other model is hone-tiny itself: it answers as the base.
    expect(texts(report).map((t) => t[2])).toEqual(texts(report).map((t) => t[0]));
    // Each answer's reward is the reward model's score of its conversation.
    const { device } = gpu as Gpu;
    const checkpoint = await loadCheckpoint(folderReader(HONE_TINY), 'hone-tiny');
    const gw = await uploadChecked(device, checkpoint, { halfMatrices: false, what: 'hone-tiny' });
    const adapter = await loadAdapter(filesReader(rewardFiles), 'random rm', config, 'SEQ_CLS');
    const padId = tokenizer.padTokenId;
    const scorer = new RewardScorer(device, new EngineKernels(device), gw, adapter, { rows: 1, seq: 128 }, padId);
    for (const row of report.rows) {
      const example = examples.find((e) => e.id === row.id) as EvalExample;
      for (const answer of row.answers) {
        const ids = renderChat(tokenizer, [...example.prompt, { role: 'assistant', content: answer.text }]).ids;
        const [expected] = await scorer.score([ids]);
        expect(Math.abs((answer.scores.reward as number) - expected)).toBeLessThan(
          1e-4 * Math.max(1, Math.abs(expected)),
        );
      }
    }
    scorer.destroy();
    gw.destroy();
  });
});
