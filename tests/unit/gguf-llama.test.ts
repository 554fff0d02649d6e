/**
 * Hone's GGUF files in llama.cpp itself (node-llama-cpp's prebuilt CPU build): llama.cpp's greedy continuation and
 * its next-token distributions against Hone's float64 reference of the same model, for hone-tiny and random tiny
 * llama / qwen2 / qwen3 / gemma3 models, each as a base model, merged with a random adapter, and with that adapter as
 * a llama.cpp LoRA over the base; and llama.cpp's tokenizer against Hone's (byte-level BPE and SentencePiece).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint, type ReadFile } from '../../core/checkpoint';
import { type GgufDtype, type GgufPlan, loraGgufPlan, modelGgufPlan, writeGguf } from '../../core/export/gguf';
import type { MergeAdapter } from '../../core/export/merge';
import { type ModelConfig, PROJECTIONS } from '../../core/model-config';
import { loadTokenizer } from '../../core/tokenizer';
import type { ReferenceLora } from '../../workers/engine/reference/model.cpu';
import { randomLora, randomWeights, tinyConfig, tinyGemmaConfig } from '../../workers/engine/reference/random-model';
import { gemmaTokenizerFiles, gemmaTokenizerSize } from '../helpers/gemma-tokenizer';
import { type Continuation, llamaGreedy, llamaTokenize, maxLogDiff, topTwoGap } from '../helpers/llama-cpp';
import { tempDir, writeModelFolder } from '../helpers/model-folder';
import { argmax, referenceGreedy, referenceProbs } from '../helpers/reference-greedy';
import { tinyTokenizerFiles } from '../helpers/tiny-tokenizer';

const HONE_TINY = new URL('../../public/models/hone-tiny', import.meta.url).pathname;
const STEPS = 8;

/**
 * Per weight type: the bound on |ln p − ln q| between llama.cpp's next-token distributions and the reference's, and
 * for f16 and q8_0, whose rounding may swap two nearly tied tokens, the reference's top-2 log-probability gap beyond
 * which llama.cpp's greedy token must still be the reference's top one (f32's greedy ids must equal the reference's).
 * The worst |ln p − ln q| measured over these models: f16 6.4e-3, q8_0 0.11 (f32 1.1e-5).
 */
const CHECKS: Record<GgufDtype, { tolerance: number; gap: number | null }> = {
  f32: { tolerance: 1e-4, gap: null },
  // Gap 4× the worst measured error: errors of that size move a gap by at most 2×, and 2× more is margin for other CPUs.
  f16: { tolerance: 2e-2, gap: 0.03 },
  q8_0: { tolerance: 3e-1, gap: 0.45 },
};

/**
 * The same for Gemma, looser: llama.cpp's CPU GELU reads a table of fp16 values (ggml's GGML_GELU_FP16), so its
 * GeGLU is not the reference's, and Gemma's norms after each block pass rounding on at full size. Worst |ln p − ln q|
 * measured on the Gemma below: f32 1.6e-2, f16 5.3e-2, q8_0 1.17; transformers with the same fp16-table GELU agrees
 * with llama.cpp's f32 file to 4e-6 (a misplaced norm or a missing 1 + w is off by ~1 in f32). Gaps 4× those.
 */
const GEMMA_CHECKS: Record<GgufDtype, { tolerance: number; gap: number }> = {
  f32: { tolerance: 3e-2, gap: 0.07 },
  f16: { tolerance: 1e-1, gap: 0.22 },
  q8_0: { tolerance: 2.5, gap: 4.7 },
};

const checksFor = (config: ModelConfig, dtype: GgufDtype) => (config.gemma ? GEMMA_CHECKS : CHECKS)[dtype];

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
  /** Names its files. */
  tag: string;
  config: ModelConfig;
  weights: Map<string, Float64Array>;
  read: ReadFile;
  source: string;
}

/** The subject's GGUF in `dtype`, with `lora` merged if given. */
async function modelFile(subject: Subject, dtype: GgufDtype, lora: ReferenceLora | null): Promise<string> {
  const checkpoint = await loadCheckpoint(subject.read, subject.source);
  const adapter = lora && mergeAdapter(lora);
  const name = `${subject.tag}${lora ? '-merged' : ''}-${dtype}.gguf`;
  return writePlan(
    await modelGgufPlan(checkpoint, subject.read, { dtype, name, source: subject.source, adapter }),
    name,
  );
}

/**
 * llama.cpp's continuation of `prompt` with the `dtype` file at `path` against the reference with `lora`: each
 * step's distribution within CHECKS' tolerance, and the same greedy ids (f32), or (f16, q8_0) teacher-forced on
 * llama.cpp's own continuation, its token equal to the reference's top one wherever that one leads by CHECKS' gap.
 */
async function expectAgreement(
  subject: Subject,
  path: string,
  dtype: GgufDtype,
  lora: ReferenceLora | null,
  prompt: number[],
): Promise<Continuation> {
  const { tolerance, gap } = checksFor(subject.config, dtype);
  // An f32 model is read with an f32 KV cache (llama.cpp's default is f16), so nothing but the weights' type differs.
  const kvCache = dtype === 'f32' ? 'F32' : 'F16';
  const got = await llamaGreedy(path, prompt, STEPS, subject.config.vocabSize, { kvCache });
  const reference = referenceProbs(subject.config, subject.weights, lora, prompt, got.ids);
  const worst = Math.max(...got.probs.map((p, i) => maxLogDiff(p, reference[i])));
  expect(worst).toBeLessThan(tolerance);
  if (gap === null) expect(got.ids).toEqual(referenceGreedy(subject.config, subject.weights, lora, prompt, STEPS));
  else {
    const wide = reference.flatMap((probs, i) => (topTwoGap(probs) > gap ? [i] : []));
    expect(wide.map((i) => got.ids[i])).toEqual(wide.map((i) => argmax(reference[i])));
    // Some position is that clear, or the check would say nothing.
    expect(wide.length).toBeGreaterThan(0);
  }
  return got;
}

/**
 * `lora` merged into an f32 GGUF continues as the reference does with it, not as it does without (or this would
 * prove nothing about the adapter); its LoRA GGUF, f32 or f16, applied by llama.cpp over the subject's f32 GGUF
 * `base`, continues as the merged file does. The merged file's continuation is returned.
 */
async function expectLora(
  subject: Subject,
  base: string,
  lora: ReferenceLora,
  prompt: number[],
): Promise<Continuation> {
  const { config, weights } = subject;
  const merged = await expectAgreement(subject, await modelFile(subject, 'f32', lora), 'f32', lora, prompt);
  expect(merged.ids).not.toEqual(referenceGreedy(config, weights, null, prompt, STEPS));
  for (const dtype of ['f32', 'f16'] as const) {
    const plan = loraGgufPlan(config, mergeAdapter(lora), { dtype, name: 'a' });
    const file = await writePlan(plan, `${subject.tag}-lora-${dtype}.gguf`);
    const applied = await llamaGreedy(base, prompt, STEPS, config.vocabSize, { lora: file, kvCache: 'F32' });
    expect(applied.ids).toEqual(merged.ids);
    const worst = Math.max(...applied.probs.map((p, i) => maxLogDiff(p, merged.probs[i])));
    expect(worst).toBeLessThan(checksFor(config, dtype).tolerance);
  }
  return merged;
}

beforeAll(async () => {
  dir = await tempDir('hone-gguf-llama-');
});

describe('hone-tiny in llama.cpp', () => {
  let tiny: Subject;
  let prompt: number[];
  let base: string;

  beforeAll(async () => {
    const read = folderReader(HONE_TINY);
    const checkpoint = await loadCheckpoint(read, 'hone-tiny');
    const weights = new Map<string, Float64Array>();
    for (const key of checkpoint.tensors.keys()) weights.set(key, Float64Array.from(await checkpoint.readFloat32(key)));
    tiny = { tag: 'tiny', config: checkpoint.config, weights, read, source: 'hone-tiny' };
    prompt = (await loadTokenizer(read, 'hone-tiny')).encode('The history of the United States');
    base = await modelFile(tiny, 'f32', null);
  });

  it('continues a prompt greedily as Hone does in f32; in f16 and q8_0 wherever the top token leads clearly', async () => {
    await expectAgreement(tiny, base, 'f32', null, prompt);
    for (const dtype of ['f16', 'q8_0'] as const) {
      await expectAgreement(tiny, await modelFile(tiny, dtype, null), dtype, null, prompt);
    }
  });

  it('merged with an adapter, continues as Hone does with the adapter; the LoRA GGUF over the base does the same', async () => {
    const targets = PROJECTIONS.filter((projection) => projection !== 'gate_proj');
    const lora = randomLora(tiny.config, targets, 4, 8, false, 7);
    await expectLora(tiny, base, lora, prompt);
    await expectAgreement(tiny, await modelFile(tiny, 'f16', lora), 'f16', lora, prompt);
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
    expect(await llamaTokenize(base, texts)).toEqual(ours);
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
  const prompt = [5, 100, 17, 42, 260, 3];
  // Gemma 3 as llama.cpp fixes it: every sixth layer global, local rotary base 10 000, scores by 1/√head_dim; a
  // window of 3 that the prompt and its continuation pass.
  configs.push([
    'gemma3 (sliding window, 1 + w norms, GeGLU)',
    tinyGemmaConfig({
      ...shared,
      vocabSize: gemmaTokenizerSize().size + 10,
      numLayers: 6,
      hiddenSize: 64,
      headDim: 16,
      gemma: {
        embedScale: 8,
        queryPreAttnScalar: 16,
        slidingWindow: 3,
        slidingLayers: [true, true, true, true, true, false],
        localRopeTheta: 10_000,
      },
    }),
  ]);

  for (const [label, config] of configs) {
    describe(label, () => {
      let subject: Subject;
      let base: string;

      beforeAll(async () => {
        const weights = randomWeights(config, 11);
        const folder = await writeModelFolder(join(dir, config.modelType), config, weights);
        const tokenizer = config.gemma ? gemmaTokenizerFiles() : tinyTokenizerFiles();
        for (const [name, text] of Object.entries(tokenizer)) await writeFile(join(folder, name), text);
        subject = { tag: config.modelType, config, weights, read: folderReader(folder), source: folder };
        base = await modelFile(subject, 'f32', null);
      });

      it('continues as Hone does in f32; in f16 and q8_0 wherever the top token leads clearly', async () => {
        await expectAgreement(subject, base, 'f32', null, prompt);
        for (const dtype of ['f16', 'q8_0'] as const) {
          await expectAgreement(subject, await modelFile(subject, dtype, null), dtype, null, prompt);
        }
      });

      it('merged with a random LoRA on all seven projections, continues as Hone does with it; so does its LoRA GGUF over the base', async () => {
        await expectLora(subject, base, randomLora(config, [...PROJECTIONS], 4, 8, false, 13), prompt);
      });

      if (config.gemma) {
        it("tokenizes as Hone's tokenizer does: merges, byte fallback, spaces, turn markers", async () => {
          const tokenizer = await loadTokenizer(subject.read, subject.source);
          const texts = [
            'the code in the cat',
            ' leading space and  two  spaces, the end ',
            '<start_of_turn>user\nWhat is the code?<end_of_turn>\n<start_of_turn>model\n',
            'tabs\tand\nnew lines\n\n  indented',
            'Ünïcödé café — naïve 🦙 emoji',
            '<eos>',
          ];
          const ours = texts.map((text) => tokenizer.encode(text, { addSpecialTokens: false }));
          expect(await llamaTokenize(base, texts)).toEqual(ours);
        });
      }
    });
  }
});
