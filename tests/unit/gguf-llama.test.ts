/**
 * Hone's GGUF files in llama.cpp itself (node-llama-cpp's prebuilt CPU build): llama.cpp's greedy continuation and
 * its next-token distributions against Hone's float64 reference of the same model, for hone-tiny (base, and merged
 * with a random adapter, or with that adapter as a llama.cpp LoRA) and random tiny llama / qwen2 / qwen3 models;
 * and llama.cpp's tokenizer against Hone's.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint, type ReadFile } from '../../core/checkpoint';
import { type GgufDtype, type GgufPlan, loraGgufPlan, modelGgufPlan, writeGguf } from '../../core/export/gguf';
import type { MergeAdapter } from '../../core/export/merge';
import type { ModelConfig } from '../../core/model-config';
import { loadTokenizer } from '../../core/tokenizer';
import type { ReferenceLora } from '../../workers/engine/reference/model.cpu';
import { randomLora, randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { argmax, llamaGreedy, llamaTokenize, maxLogDiff, referenceGreedy, referenceProbs } from '../helpers/llama-cpp';
import { tempDir, writeModelFolder } from '../helpers/model-folder';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

const HONE_TINY = new URL('../../public/models/hone-tiny', import.meta.url).pathname;
const STEPS = 8;

let dir: string;

async function writePlan(plan: GgufPlan, name: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  await writeGguf(plan, (chunk) => void chunks.push(chunk));
  const path = join(dir, name);
  await writeFile(path, chunks);
  return path;
}

function mergeAdapter(lora: ReferenceLora): MergeAdapter {
  return {
    r: lora.rank,
    scale: lora.alpha / lora.rank,
    modules: new Map([...lora.modules].map(([k, m]) => [k, { A: Float32Array.from(m.A), B: Float32Array.from(m.B) }])),
  };
}

interface Subject {
  config: ModelConfig;
  weights: Map<string, Float64Array>;
  read: ReadFile;
  source: string;
}

async function modelFile(subject: Subject, dtype: GgufDtype, lora: ReferenceLora | null, name: string) {
  const checkpoint = await loadCheckpoint(subject.read, subject.source);
  const adapter = lora && mergeAdapter(lora);
  return writePlan(
    await modelGgufPlan(checkpoint, subject.read, { dtype, name, source: subject.source, adapter }),
    name,
  );
}

/**
 * llama.cpp's continuation of `prompt` against the reference: the same greedy tokens (f32, f16), or the same top-1
 * at most positions (q8_0), and each step's distribution within `tolerance` of the reference's.
 */
async function expectAgreement(
  subject: Subject,
  path: string,
  lora: ReferenceLora | null,
  prompt: number[],
  tolerance: number,
  exact: boolean,
) {
  // An f32 model is read with an f32 KV cache (llama.cpp's default is f16), so nothing but the weights' type differs.
  const kvCache = path.includes('f32') ? 'F32' : 'F16';
  const got = await llamaGreedy(path, prompt, STEPS, subject.config.vocabSize, { kvCache });
  const expected = referenceGreedy(subject.config, subject.weights, lora, prompt, STEPS);
  const reference = referenceProbs(subject.config, subject.weights, lora, prompt, got.ids);
  const worst = Math.max(...got.probs.map((p, i) => maxLogDiff(p, reference[i])));
  expect(worst).toBeLessThan(tolerance);
  if (exact) expect(got.ids).toEqual(expected);
  else {
    const agree = got.ids.filter((id, i) => argmax(reference[i]) === id).length;
    expect(agree).toBeGreaterThanOrEqual(STEPS - 2);
  }
  return got;
}

beforeAll(async () => {
  dir = await tempDir('hone-gguf-llama-');
});

describe('hone-tiny in llama.cpp', () => {
  let tiny: Subject;
  let prompt: number[];
  const lora = () =>
    randomLora(tiny.config, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], 4, 8, false, 7);

  beforeAll(async () => {
    const read = folderReader(HONE_TINY);
    const checkpoint = await loadCheckpoint(read, 'hone-tiny');
    const weights = new Map<string, Float64Array>();
    for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
    tiny = { config: checkpoint.config, weights, read, source: 'hone-tiny' };
    prompt = (await loadTokenizer(read, 'hone-tiny')).encode('The history of the United States');
  });

  it('continues a prompt greedily as Hone does, in f32 and f16; in q8_0 the top token mostly agrees', async () => {
    await expectAgreement(tiny, await modelFile(tiny, 'f32', null, 'tiny-f32.gguf'), null, prompt, 1e-4, true);
    await expectAgreement(tiny, await modelFile(tiny, 'f16', null, 'tiny-f16.gguf'), null, prompt, 2e-2, true);
    await expectAgreement(tiny, await modelFile(tiny, 'q8_0', null, 'tiny-q8_0.gguf'), null, prompt, 3e-1, false);
  });

  it('merged with an adapter, continues as Hone does with the adapter; the LoRA GGUF over the base does the same', async () => {
    const adapter = lora();
    const merged = await modelFile(tiny, 'f32', adapter, 'tiny-merged-f32.gguf');
    const mergedRun = await expectAgreement(tiny, merged, adapter, prompt, 1e-4, true);
    // The adapter changes the answer: otherwise this would prove nothing about it.
    expect(mergedRun.ids).not.toEqual(referenceGreedy(tiny.config, tiny.weights, null, prompt, STEPS));
    await expectAgreement(
      tiny,
      await modelFile(tiny, 'f16', adapter, 'tiny-merged-f16.gguf'),
      adapter,
      prompt,
      2e-2,
      true,
    );

    const base = join(dir, 'tiny-f32.gguf');
    for (const dtype of ['f32', 'f16'] as const) {
      const file = await writePlan(
        loraGgufPlan(tiny.config, mergeAdapter(adapter), { dtype, name: 'a' }),
        `lora-${dtype}.gguf`,
      );
      const applied = await llamaGreedy(base, prompt, STEPS, tiny.config.vocabSize, { lora: file, kvCache: 'F32' });
      expect(applied.ids).toEqual(mergedRun.ids);
      const worst = Math.max(...applied.probs.map((p, i) => maxLogDiff(p, mergedRun.probs[i])));
      expect(worst).toBeLessThan(dtype === 'f32' ? 1e-4 : 1e-2);
    }
  });

  it("tokenizes as Hone's tokenizer does, special tokens included", async () => {
    const tokenizer = await loadTokenizer(tiny.read, 'hone-tiny');
    const texts = [
      'Hello world',
      ' leading space and  two  spaces',
      "It's 2024: 12345 numbers, don't they'll",
      '<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n',
      'tabs\tand\nnew lines\n\n  indented',
      'Ünïcödé café — naïve 🦙 emoji',
      '<|endoftext|>',
    ];
    const ours = texts.map((text) => tokenizer.encode(text, { addSpecialTokens: false }));
    expect(await llamaTokenize(join(dir, 'tiny-f32.gguf'), texts)).toEqual(ours);
  });
});

describe('random tiny models in llama.cpp', () => {
  const shared = { vocabSize: 280, maxPositionEmbeddings: 128 };
  const configs: [string, ModelConfig][] = [
    [
      'llama, untied, Llama 3 rope scaling',
      tinyConfig({
        ...shared,
        hiddenSize: 64,
        intermediateSize: 96,
        headDim: 16,
        tieWordEmbeddings: false,
        ropeScaling: {
          type: 'llama3',
          factor: 8,
          lowFreqFactor: 1,
          highFreqFactor: 4,
          originalMaxPositionEmbeddings: 16,
        },
      }),
    ],
    [
      'qwen2 (q/k/v biases)',
      tinyConfig({ ...shared, modelType: 'qwen2', attentionBias: true, hiddenSize: 64, headDim: 16 }),
    ],
    [
      'qwen3 (q/k norms, head_dim 24)',
      tinyConfig({ ...shared, modelType: 'qwen3', qkNorm: true, hiddenSize: 64, headDim: 24 }),
    ],
  ];

  for (const [label, config] of configs) {
    it(`${label}: f32 and f16 continue as Hone does, q8_0 mostly agrees`, async () => {
      const weights = randomWeights(config, 11);
      const folder = await writeModelFolder(join(dir, config.modelType), config, weights);
      for (const [name, text] of Object.entries(tinyTokenizerFiles())) await writeFile(join(folder, name), text);
      const subject: Subject = { config, weights, read: folderReader(folder), source: folder };
      const prompt = [5, 100, 17, 42, 260, 3];
      for (const [dtype, tolerance] of [
        ['f32', 1e-4],
        ['f16', 2e-2],
      ] as const) {
        const path = await modelFile(subject, dtype, null, `${config.modelType}-${dtype}.gguf`);
        await expectAgreement(subject, path, null, prompt, tolerance, true);
      }
      const q8 = await modelFile(subject, 'q8_0', null, `${config.modelType}-q8_0.gguf`);
      await expectAgreement(subject, q8, null, prompt, 3e-1, false);
    });
  }
});
