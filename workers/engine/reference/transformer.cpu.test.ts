import { describe, expect, it } from 'vitest';
import { type ModelConfig, PROJECTIONS, projectionKey } from '../../../core/model-config';
import { mulberry32 } from '../../../core/random';
import { ropeCpu } from '../kernels/rope.cpu';
import { ropeInverseFrequencies } from '../model/rope-frequencies';
import { rotaryTables } from './layer.cpu';
import { randomLora, randomWeights, tinyConfig } from './random-model';
import {
  IGNORE_INDEX,
  loraScale,
  type ReferenceLora,
  referenceForward,
  referenceForwardBackward,
  referenceRewardForwardBackward,
} from './transformer.cpu';

const llama3Scaling = {
  type: 'llama3',
  factor: 8,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 64,
} as const;

/**
 * The variants the gradient check covers; each changes one architectural feature of the tiny llama. `hf` holds the
 * loss with and without the variant's LoRA as computed, in float64, by an independent NumPy transcription of
 * transformers' modeling_llama / qwen2 / qwen3 and PEFT's lora.Linear (rotate_half, repeat_kv, masked softmax,
 * shifted cross-entropy) on the same seeded weights, tokens and labels: it pins the forward's semantics, which the
 * gradient check alone cannot.
 */
const variants: {
  name: string;
  config: ModelConfig;
  seq: number;
  useRslora: boolean;
  defaultLabels?: boolean;
  hf: { lora: number; base: number };
}[] = [
  {
    name: 'llama, tied embeddings',
    config: tinyConfig(),
    seq: 6,
    useRslora: false,
    defaultLabels: true,
    hf: { lora: 4.72767318698534, base: 4.838305437171695 },
  },
  {
    name: 'llama, untied lm_head, rsLoRA',
    config: tinyConfig({ tieWordEmbeddings: false }),
    seq: 7,
    useRslora: true,
    hf: { lora: 3.7354491020951484, base: 4.1381755057768945 },
  },
  {
    name: 'qwen2, q/k/v bias',
    config: tinyConfig({ modelType: 'qwen2', attentionBias: true }),
    seq: 5,
    useRslora: false,
    hf: { lora: 3.9790981949180733, base: 4.276061696191958 },
  },
  {
    name: 'qwen3, q/k norm, headDim 8 != hidden / heads',
    config: tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8 }),
    seq: 6,
    useRslora: false,
    hf: { lora: 3.832792880976878, base: 5.257727723658167 },
  },
  {
    // theta 100 puts headDim 6's three frequencies in the three llama3 bands (kept, blended, divided).
    name: 'llama3 rope scaling',
    config: tinyConfig({ ropeTheta: 100, ropeScaling: llama3Scaling }),
    seq: 6,
    useRslora: false,
    hf: { lora: 4.189268254817484, base: 4.818665175219582 },
  },
];

/** The seeded model, LoRA on all seven projections (rank 3, alpha 6), batch of 2 and labels of variant `v`. */
function setup(v: number) {
  const { config, seq, useRslora, defaultLabels } = variants[v];
  const weights = randomWeights(config, 100 + v);
  const lora = randomLora(config, [...PROJECTIONS], 3, 6, useRslora, 200 + v);
  const tokens = randomTokens(config, 2, seq, 300 + v);
  const labels = defaultLabels ? undefined : maskedLabels(tokens);
  return { config, weights, lora, tokens, labels };
}

function randomTokens(config: ModelConfig, batch: number, seq: number, seed: number): number[][] {
  const next = mulberry32(seed);
  return Array.from({ length: batch }, () => Array.from({ length: seq }, () => Math.floor(next() * config.vocabSize)));
}

/** The tokens as labels, with a few positions masked (including the first label each row actually predicts). */
function maskedLabels(tokens: number[][]): number[][] {
  return tokens.map((row, b) => row.map((token, t) => (t === 1 + b || t === row.length - 2 ? IGNORE_INDEX : token)));
}

/** A weight that must exist. */
function tensor(weights: Map<string, Float64Array>, key: string): Float64Array {
  const value = weights.get(key);
  if (!value) throw new Error(`no weight ${key}`);
  return value;
}

const STEP = 1e-5;

/**
 * Central differences of `loss` in a few entries of `values` (changed in place and restored): always the entry with
 * the largest analytic gradient, plus `samples` seeded random ones. Returns the mismatches as readable lines.
 */
function finiteDifferenceMismatches(
  name: string,
  values: Float64Array,
  analytic: Float64Array,
  loss: () => number,
  seed: number,
  samples = 3,
): string[] {
  let largest = 0;
  for (let i = 1; i < analytic.length; i++) if (Math.abs(analytic[i]) > Math.abs(analytic[largest])) largest = i;
  if (Math.abs(analytic[largest]) < 1e-6) return [`${name}: gradient is zero everywhere`];
  const next = mulberry32(seed);
  const indices = [largest, ...Array.from({ length: samples }, () => Math.floor(next() * values.length))];
  const mismatches: string[] = [];
  for (const i of indices) {
    const saved = values[i];
    values[i] = saved + STEP;
    const up = loss();
    values[i] = saved - STEP;
    const down = loss();
    values[i] = saved;
    const numeric = (up - down) / (2 * STEP);
    // The absolute floor covers float64 round-off in the difference (|loss| * 1e-16 / STEP ≈ 1e-10).
    if (Math.abs(numeric - analytic[i]) > 1e-6 * Math.max(Math.abs(numeric), Math.abs(analytic[i])) + 1e-9) {
      mismatches.push(`${name}[${i}]: analytic ${analytic[i]}, finite difference ${numeric}`);
    }
  }
  return mismatches;
}

describe('referenceForwardBackward matches finite differences of referenceForward', () => {
  for (const [v, variant] of variants.entries()) {
    it(variant.name, () => {
      const { config, weights, lora, tokens, labels } = setup(v);
      const loss = () => referenceForward(config, weights, lora, tokens, labels);
      const result = referenceForwardBackward(config, weights, lora, tokens, labels, { full: true });
      expect(result.loss).toBeCloseTo(loss(), 12);

      const mismatches: string[] = [];
      let seed = 1;
      for (const [key, module] of lora.modules) {
        const grad = result.loraGrads.get(key);
        if (!grad) throw new Error(`no LoRA gradient for ${key}`);
        mismatches.push(...finiteDifferenceMismatches(`${key}.A`, module.A, grad.A, loss, seed++));
        mismatches.push(...finiteDifferenceMismatches(`${key}.B`, module.B, grad.B, loss, seed++));
      }
      for (const [key, values] of weights) {
        const grad = result.weightGrads.get(key);
        if (!grad) throw new Error(`no weight gradient for ${key}`);
        mismatches.push(...finiteDifferenceMismatches(key, values, grad, loss, seed++));
      }
      expect(mismatches).toEqual([]);
      expect(new Set(result.weightGrads.keys())).toEqual(new Set(weights.keys()));
    });
  }

  it('the reward model (score head at given positions, Bradley-Terry over pairs), for LoRA and the head', () => {
    const { config, weights, lora } = setup(3);
    const tokens = randomTokens(config, 4, 6, 9);
    const positions = [5, 2, 4, 5];
    const head = Float64Array.from({ length: config.hiddenSize }, (_, i) => Math.sin(i + 1) / 4);
    const loss = () => referenceRewardForwardBackward(config, weights, lora, tokens, positions, head).loss;
    const result = referenceRewardForwardBackward(config, weights, lora, tokens, positions, head);
    const mismatches: string[] = [];
    let seed = 900;
    for (const [key, module] of lora.modules) {
      const grad = result.loraGrads.get(key);
      if (!grad) throw new Error(`no LoRA gradient for ${key}`);
      mismatches.push(...finiteDifferenceMismatches(`${key}.A`, module.A, grad.A, loss, seed++));
      mismatches.push(...finiteDifferenceMismatches(`${key}.B`, module.B, grad.B, loss, seed++));
    }
    mismatches.push(...finiteDifferenceMismatches('score', head, result.headGrad, loss, seed++));
    expect(mismatches).toEqual([]);
    // Tokens after a row's scored position cannot change its score (the attention is causal).
    const changed = tokens.map((row) => [...row]);
    changed[1][4] = (changed[1][4] + 1) % config.vocabSize;
    const again = referenceRewardForwardBackward(config, weights, lora, changed, positions, head);
    expect(again.scores[1]).toBeCloseTo(result.scores[1], 12);
    expect(again.scores[0]).toBeCloseTo(result.scores[0], 12);
  });

  it('with LoRA dropout masks (fixed, p = 0.5), for LoRA and base weights alike', () => {
    const { config, weights, lora, tokens, labels } = setup(1);
    const next = mulberry32(77);
    const N = tokens.length * tokens[0].length;
    lora.dropoutMasks = new Map(
      [...lora.modules].map(([key, { A }]) => [
        key,
        Float64Array.from({ length: N * (A.length / lora.rank) }, () => (next() < 0.5 ? 0 : 2)),
      ]),
    );
    const loss = () => referenceForward(config, weights, lora, tokens, labels);
    const result = referenceForwardBackward(config, weights, lora, tokens, labels, { full: true });
    const withoutDropout = referenceForward(config, weights, { ...lora, dropoutMasks: undefined }, tokens, labels);
    expect(Math.abs(result.loss - withoutDropout)).toBeGreaterThan(1e-6);
    const mismatches: string[] = [];
    let seed = 500;
    for (const [key, module] of lora.modules) {
      const grad = result.loraGrads.get(key);
      if (!grad) throw new Error(`no LoRA gradient for ${key}`);
      mismatches.push(...finiteDifferenceMismatches(`${key}.A`, module.A, grad.A, loss, seed++));
      mismatches.push(...finiteDifferenceMismatches(`${key}.B`, module.B, grad.B, loss, seed++));
    }
    for (const key of ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight']) {
      mismatches.push(
        ...finiteDifferenceMismatches(
          key,
          tensor(weights, key),
          result.weightGrads.get(key) ?? new Float64Array(),
          loss,
          seed++,
        ),
      );
    }
    expect(mismatches).toEqual([]);
  });

  it('gives the same LoRA gradients with frozen base weights, and no weight gradients', () => {
    const config = tinyConfig();
    const weights = randomWeights(config, 1);
    const lora = randomLora(config, ['q_proj', 'v_proj', 'down_proj'], 2, 4, false, 2);
    const tokens = randomTokens(config, 2, 5, 3);
    const frozen = referenceForwardBackward(config, weights, lora, tokens);
    const full = referenceForwardBackward(config, weights, lora, tokens, undefined, { full: true });
    expect(frozen.weightGrads.size).toBe(0);
    expect([...frozen.loraGrads.keys()].sort()).toEqual([
      '0.down_proj',
      '0.q_proj',
      '0.v_proj',
      '1.down_proj',
      '1.q_proj',
      '1.v_proj',
    ]);
    expect(frozen.loraGrads).toEqual(full.loraGrads);
    expect(frozen.loss).toBe(full.loss);
  });
});

describe('referenceForward matches an independent NumPy transcription of transformers + PEFT', () => {
  for (const [v, variant] of variants.entries()) {
    it(variant.name, () => {
      const { config, weights, lora, tokens, labels } = setup(v);
      expect(referenceForward(config, weights, lora, tokens, labels)).toBeCloseTo(variant.hf.lora, 12);
      expect(referenceForward(config, weights, null, tokens, labels)).toBeCloseTo(variant.hf.base, 12);
    });
  }
});

describe('reference semantics', () => {
  const config = tinyConfig();
  const weights = randomWeights(config, 7);
  const tokens = randomTokens(config, 2, 6, 8);

  it('a LoRA with B = 0 leaves the loss unchanged, yet B gets a gradient (PEFT start)', () => {
    const lora = randomLora(config, [...PROJECTIONS], 3, 6, false, 9);
    for (const module of lora.modules.values()) module.B.fill(0);
    const result = referenceForwardBackward(config, weights, lora, tokens);
    expect(result.loss).toBe(referenceForward(config, weights, null, tokens));
    for (const grad of result.loraGrads.values()) {
      expect(grad.A.every((x) => x === 0)).toBe(true);
      expect(grad.B.some((x) => x !== 0)).toBe(true);
    }
  });

  it('all weights zero except the norms gives uniform logits: loss = ln(vocab)', () => {
    const zero = new Map(
      [...weights].map(([key, w]) => [key, key.endsWith('norm.weight') ? w : new Float64Array(w.length)]),
    );
    expect(referenceForward(config, zero, null, tokens)).toBeCloseTo(Math.log(config.vocabSize), 14);
  });

  it('with zero projections the model is embedding → model.norm → lm_head, with the shifted, masked mean', () => {
    // Zero o_proj and down_proj make each layer the identity, so the logits at t are norm(e[token t]) · E^T.
    const identityLayers = new Map(weights);
    for (let l = 0; l < config.numLayers; l++) {
      for (const projection of ['o_proj', 'down_proj'] as const) {
        identityLayers.set(
          projectionKey(l, projection),
          new Float64Array(tensor(weights, projectionKey(l, projection)).length),
        );
      }
    }
    const labels = maskedLabels(tokens);
    const E = tensor(weights, 'model.embed_tokens.weight');
    const w = tensor(weights, 'model.norm.weight');
    const { hiddenSize: D, vocabSize: V } = config;
    let total = 0;
    let count = 0;
    for (let b = 0; b < tokens.length; b++) {
      for (let t = 0; t + 1 < tokens[b].length; t++) {
        if (labels[b][t + 1] === IGNORE_INDEX) continue;
        const e = E.subarray(tokens[b][t] * D, (tokens[b][t] + 1) * D);
        const rms = Math.sqrt(e.reduce((s, x) => s + x * x, 0) / D + config.rmsNormEps);
        const logits = Array.from({ length: V }, (_, j) =>
          e.reduce((s, x, i) => s + ((w[i] * x) / rms) * E[j * D + i], 0),
        );
        const logSumExp = Math.log(logits.reduce((s, z) => s + Math.exp(z), 0));
        total += logSumExp - logits[labels[b][t + 1]];
        count++;
      }
    }
    expect(referenceForward(config, identityLayers, null, tokens, labels)).toBeCloseTo(total / count, 12);
  });

  it('is causal: later tokens do not change the loss of earlier predictions', () => {
    // Only labels 1 and 2 count, predicted from positions 0 and 1.
    const labels = tokens.map((row) => row.map((token, t) => (t === 1 || t === 2 ? token : IGNORE_INDEX)));
    const loss = referenceForward(config, weights, null, tokens, labels);
    const laterChanged = tokens.map((row) => row.map((token, t) => (t >= 2 ? (token + 5) % config.vocabSize : token)));
    expect(referenceForward(config, weights, null, laterChanged, labels)).toBe(loss);
    const earlierChanged = tokens.map((row) =>
      row.map((token, t) => (t === 0 ? (token + 5) % config.vocabSize : token)),
    );
    expect(referenceForward(config, weights, null, earlierChanged, labels)).not.toBeCloseTo(loss, 6);
  });

  it('grouped-query attention equals multi-head attention with each kv head repeated for its group', () => {
    // numHeads 4 over numKvHeads 2: query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1 (HF's repeat_kv).
    const mha = tinyConfig({ numKvHeads: 4 });
    const repeated = randomWeights(mha, 7);
    const { headDim: hd, hiddenSize: D } = config;
    for (let l = 0; l < config.numLayers; l++) {
      for (const projection of ['k_proj', 'v_proj'] as const) {
        const gqa = tensor(weights, projectionKey(l, projection)); // [2 * hd, D]
        const full = tensor(repeated, projectionKey(l, projection)); // [4 * hd, D]
        for (let h = 0; h < 4; h++)
          full.set(gqa.subarray(Math.floor(h / 2) * hd * D, (Math.floor(h / 2) + 1) * hd * D), h * hd * D);
      }
    }
    for (const [key, value] of weights) if (!/[kv]_proj/.test(key)) repeated.set(key, value);
    expect(referenceForward(mha, repeated, null, tokens)).toBeCloseTo(
      referenceForward(config, weights, null, tokens),
      12,
    );
  });

  it('scales LoRA by alpha / rank, or alpha / sqrt(rank) with rsLoRA', () => {
    expect(loraScale({ rank: 4, alpha: 8, useRslora: false })).toBe(2);
    expect(loraScale({ rank: 4, alpha: 8, useRslora: true })).toBe(4);
    const rank = 3;
    const rs = randomLora(config, ['q_proj', 'up_proj'], rank, 2, true, 11);
    const plain: ReferenceLora = { ...rs, useRslora: false, alpha: 2 * Math.sqrt(rank) };
    expect(referenceForward(config, weights, rs, tokens)).toBeCloseTo(
      referenceForward(config, weights, plain, tokens),
      12,
    );
    expect(referenceForward(config, weights, rs, tokens)).not.toBeCloseTo(
      referenceForward(config, weights, null, tokens),
      4,
    );

    // Two stacked copies of a rank-r adapter double its product and its rank: alpha / rank keeps the output equal.
    const doubled: ReferenceLora = { ...plain, rank: 2 * rank, modules: new Map() };
    for (const [key, { A, B }] of plain.modules) {
      const out = B.length / rank;
      const B2 = new Float64Array(out * 2 * rank);
      for (let o = 0; o < out; o++) for (let j = 0; j < 2 * rank; j++) B2[o * 2 * rank + j] = B[o * rank + (j % rank)];
      const A2 = new Float64Array(2 * A.length);
      A2.set(A);
      A2.set(A, A.length);
      doubled.modules.set(key, { A: A2, B: B2 });
    }
    expect(referenceForward(config, weights, doubled, tokens)).toBeCloseTo(
      referenceForward(config, weights, plain, tokens),
      12,
    );
  });

  it('computes default and llama3 inverse frequencies like transformers', () => {
    expect([...ropeInverseFrequencies({ headDim: 6, ropeTheta: 10000, ropeScaling: null })]).toEqual([
      1,
      10000 ** (-2 / 6),
      10000 ** (-4 / 6),
    ]);
    // headDim 8, theta 10000: base frequencies 1, 0.1, 0.01, 0.001; wavelengths 2π, 20π, 200π, 2000π.
    // original context 64: low_freq_wavelen 64 / 1 = 64, high_freq_wavelen 64 / 4 = 16.
    const scaled = ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000, ropeScaling: llama3Scaling });
    expect(scaled[0]).toBeCloseTo(1, 15); // 2π < 16: kept
    // 16 <= 20π <= 64: smooth = (64 / 20π - 1) / (4 - 1) = 0.00619721...; (1 - smooth) * 0.1 / 8 + smooth * 0.1
    expect(scaled[1]).toBeCloseTo(0.013042256, 9);
    expect(scaled[2]).toBeCloseTo(0.01 / 8, 15); // 200π > 64: divided by factor
    expect(scaled[3]).toBeCloseTo(0.001 / 8, 15);
  });

  it('rotates pairs (i, i + headDim / 2) by position * inv_freq (HF rotate_half)', () => {
    // One head of headDim 4 at positions 0 and 1 (T = 2): pairs (x0, x2) at angle t * 0.5, (x1, x3) at t * 0.25.
    const x = Float64Array.from([1, 2, 3, 4, 1, 2, 3, 4]);
    const { cos, sin } = rotaryTables(Float64Array.from([0.5, 0.25]), 2);
    const out = ropeCpu('forward', x, cos, sin, { batch: 1, seq: 2, heads: 1, headDim: 4 });
    expect([...out.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    const [c1, s1, c2, s2] = [Math.cos(0.5), Math.sin(0.5), Math.cos(0.25), Math.sin(0.25)];
    expect([...out.subarray(4)]).toEqual([1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2]);
  });
});

describe('reference input validation', () => {
  const config = tinyConfig();
  const weights = randomWeights(config, 1);
  const tokens = [
    [1, 2, 3],
    [4, 5, 6],
  ];

  it('names what is wrong', () => {
    expect(() => referenceForward(config, weights, null, [[1, 37, 2]])).toThrow(
      /token 37 at \[0\]\[1\] is out of range/,
    );
    expect(() =>
      referenceForward(config, weights, null, [
        [1, 2, 3],
        [4, 5],
      ]),
    ).toThrow(/tokens\[1\] has 2 tokens.*ragged/);
    expect(() => referenceForward(config, weights, null, tokens, [[1, 2, IGNORE_INDEX]])).toThrow(/labels has 1 rows/);
    expect(() =>
      referenceForward(
        config,
        weights,
        null,
        tokens,
        tokens.map((row) => row.map(() => IGNORE_INDEX)),
      ),
    ).toThrow(/no label to predict/);
    const missing = new Map(weights);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    expect(() => referenceForward(config, missing, null, tokens)).toThrow(
      /missing weight model.layers.1.mlp.up_proj.weight/,
    );
    const short = new Map(weights).set('model.norm.weight', new Float64Array(3));
    expect(() => referenceForward(config, short, null, tokens)).toThrow(
      /weight model.norm.weight has 3 values, expected 24/,
    );
    const lora = randomLora(config, ['k_proj'], 2, 4, false, 1);
    lora.modules.set('0.k_proj', { A: new Float64Array(2 * 24), B: new Float64Array(5) });
    expect(() => referenceForward(config, weights, lora, tokens)).toThrow(
      /LoRA 0.k_proj B has 5 values, expected \[12, 2\]/,
    );
    lora.modules.set('9.k_proj', { A: new Float64Array(0), B: new Float64Array(0) });
    lora.modules.delete('0.k_proj');
    expect(() => referenceForward(config, weights, lora, tokens)).toThrow(/LoRA module key "9.k_proj"/);
  });
});
