import { describe, expect, it } from 'vitest';
import { expectedTensors, type ModelConfig, PROJECTIONS, type Projection } from '../../../core/model-config';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { referenceGreedy } from '../../../tests/helpers/reference-greedy';
import { submitOps } from '../gpu/ops';
import { dequantize, type QuantFormat, quantize } from '../kernels/quant';
import { randomLora, randomWeights, tinyConfig, tinyGemmaConfig } from '../reference/random-model';
import { Decoder } from './decoder';
import { generate, generateRows } from './generate';
import { CPU_KERNELS, EngineKernels, GPU_KERNELS } from './kernels';
import { everyLayer, GpuLora } from './lora';
import type { MatmulTile } from './matmul-tuner';
import { TransformerStep } from './transformer';

const gpu = setupTestGpu();
const TARGETS: Projection[] = ['q_proj', 'v_proj', 'o_proj', 'down_proj'];

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

interface SetupOptions {
  lora?: boolean;
  vocabChunkBytes?: number;
  half?: boolean;
  targets?: Projection[];
  /** The projections quantized (and the tables at 8 bits); `weights` are then the dequantized ones the GPU uses. */
  base?: QuantFormat;
}

async function setup(config: ModelConfig, options: SetupOptions = {}) {
  const { lora: withLora = false, vocabChunkBytes, half: halfMatrices = false, targets = TARGETS, base } = options;
  const { device } = gpu();
  const kernels = new EngineKernels(device);
  const drawn = randomWeights(config, 11);
  const gw = await uploadWeights(device, config, drawn, { vocabChunkBytes, halfMatrices, base });
  const weights = new Map(drawn);
  // Projections in `base`, the tables at 8 bits.
  for (const [key, [out, inDim]] of base ? expectedTensors(config) : []) {
    const format = key.endsWith('_proj.weight')
      ? base
      : key.includes('embed_tokens') || key === 'lm_head.weight'
        ? 'q8'
        : null;
    if (!format) continue;
    const words = quantize(Float32Array.from(drawn.get(key) ?? []), out, inDim, format);
    weights.set(key, Float64Array.from(dequantize(words, out, inDim, format)));
  }
  const ref = randomLora(config, targets, 3, 6, false, 12);
  const lora = withLora
    ? GpuLora.create(
        device,
        config,
        { r: 3, loraAlpha: 6, useRslora: false, loraDropout: 0, modules: everyLayer(config, targets) },
        fromReference(ref),
      )
    : null;
  return { device, kernels, gw, lora, weights, ref: withLora ? ref : null };
}

/** Greedy decoding by recomputing the whole sequence with the training forward every token. */
async function recomputed(
  device: GPUDevice,
  step: TransformerStep,
  prompt: number[],
  steps: number,
): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const ids = [...prompt];
  const logits: Float32Array[] = [];
  const seq = step.shape.seq;
  for (let n = 0; n < steps; n++) {
    step.setBatch([[...ids, ...Array(seq - ids.length).fill(0)]]);
    submitOps(device, step.forwardOps);
    const l = await step.readLogits(ids.length - 1);
    logits.push(l);
    ids.push(argmax(l));
  }
  return { ids: ids.slice(prompt.length), logits };
}

/**
 * Decodes `prompt` then `steps` greedy tokens with a cache of `cacheLength`, each step's logits those of recomputing
 * the whole sequence with the training forward, its tokens theirs; returns the tokens and the decoder.
 */
async function expectDecodesAsRecomputed(
  { device, gw, lora }: Awaited<ReturnType<typeof setup>>,
  kernels: EngineKernels,
  prompt: number[],
  steps: number,
  cacheLength: number,
): Promise<{ ids: number[]; decoder: Decoder }> {
  const shape = { batch: 1, seq: prompt.length + steps };
  const step = new TransformerStep(device, kernels, gw, lora, shape, { full: !lora });
  const expected = await recomputed(device, step, prompt, steps);
  step.destroy();
  const decoder = new Decoder(device, kernels, gw, lora, cacheLength);
  let logits = await decoder.feed(prompt);
  const ids: number[] = [];
  for (let n = 0; n < steps; n++) {
    expect(maxRelativeError(logits, expected.logits[n])).toBeLessThan(1e-4);
    const next = argmax(logits);
    ids.push(next);
    logits = await decoder.step(next);
  }
  expect(ids).toEqual(expected.ids);
  return { ids, decoder };
}

describe('decoding with a key-value cache', () => {
  const cases: [string, ModelConfig, boolean, boolean?, Projection[]?][] = [
    ['llama, base model', tinyConfig(), false],
    ['llama with a LoRA adapter', tinyConfig(), true],
    // q, k and v's x A^T as one gemv of three segments; the gated MLP with both low-rank terms.
    ['llama with a LoRA adapter on every projection', tinyConfig(), true, false, [...PROJECTIONS]],
    ['llama with a LoRA adapter over fp16 matrices', tinyConfig({ hiddenSize: 32, headDim: 8 }), true, true],
    // Rows of 27 halves straddle words: the gemvs give way to the matmul, and the MLP to its three products.
    ['fp16 matrices of odd width, with a LoRA adapter', tinyConfig({ hiddenSize: 27, headDim: 8 }), true, true],
    [
      'qwen2 (q/k/v bias, untied head)',
      tinyConfig({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false }),
      true,
    ],
    [
      'qwen3 (q/k norms)',
      tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8, numHeads: 4, numKvHeads: 1 }),
      true,
    ],
    // Gemma 3: 14 tokens through windows of 3 on the local layers, the global one seeing them all.
    [
      'gemma3 with a LoRA adapter on every projection, past the sliding window',
      tinyGemmaConfig(),
      true,
      false,
      [...PROJECTIONS],
    ],
    ['gemma3 over fp16 matrices (one gated GELU gemv)', tinyGemmaConfig({ hiddenSize: 32, headDim: 8 }), true, true],
  ];
  for (const [name, config, withLora, half, targets] of cases) {
    it(`gives the logits of recomputing the whole sequence, token by token: ${name}`, async () => {
      const model = await setup(config, { lora: withLora, half, targets });
      const prompt = [3, 17, 5, 30, 8];
      const steps = 9;
      const { ids, decoder } = await expectDecodesAsRecomputed(model, model.kernels, prompt, steps, 32);
      // fp16 matrices round the weights the float64 reference keeps exact, so only fp32 must match it token for token.
      if (!half) expect(ids.slice(0, 4)).toEqual(referenceGreedy(config, model.weights, model.ref, prompt, 4));
      expect(decoder.cached).toBe(prompt.length + steps);
      decoder.destroy();
    });
  }

  /**
   * Prompts prefilled (`prefill`, the training forward filling the caches) and then decoded give the logits of the
   * same prompts fed a decoding step per token, at the prompt's end and at every token decoded after it, so both
   * caches hold what decoding would have put there. `limit` caps the tokens prefilled at once.
   */
  async function expectPrefillMatches(
    { device, kernels, gw, lora }: Awaited<ReturnType<typeof setup>>,
    prompts: number[][],
    limit?: number,
  ) {
    const rows = prompts.length;
    const V = gw.config.vocabSize;
    const prefilled = new Decoder(device, kernels, gw, lora, 16, rows, limit);
    const stepped = new Decoder(device, kernels, gw, lora, 16, rows);
    prefilled.prefill(prompts.map((p) => p.slice(0, -1)));
    for (let t = 0; t < prompts[0].length - 1; t++) stepped.advance(prompts.map((p) => p[t]));
    expect(prefilled.cached).toBe(stepped.cached);
    let tokens = prompts.map((p) => p[p.length - 1]);
    for (let n = 0; n < 5; n++) {
      const [a, b] = [await prefilled.stepRows(tokens), await stepped.stepRows(tokens)];
      expect(maxRelativeError(a, b)).toBeLessThan(1e-4);
      tokens = prompts.map((_, r) => argmax(b.subarray(r * V, (r + 1) * V)));
    }
    prefilled.destroy();
    stepped.destroy();
  }

  for (const [name, config, withLora, half, targets] of cases) {
    it(`prefills a prompt in one pass as decoding would have fed it, one row and three: ${name}`, async () => {
      const model = await setup(config, { lora: withLora, half, targets });
      await expectPrefillMatches(model, [[3, 17, 5, 30, 8, 2, 11]]);
      await expectPrefillMatches(model, [
        [3, 17, 5, 30, 8, 2],
        [9, 9, 1, 0, 36, 4],
        [12, 6, 33, 7, 21, 5],
      ]);
    });
  }

  it("prefills on GPUs' kernels, and past its limit feeds the rest a step per token", async () => {
    const model = await setup(tinyConfig({ hiddenSize: 32, headDim: 8 }), { lora: true, half: true });
    // Five tokens prefilled as a pass of eight, padded for the tuner.
    const gpuKernels = { ...model, kernels: new EngineKernels(model.device, GPU_KERNELS) };
    await expectPrefillMatches(gpuKernels, [[3, 17, 5, 30, 8, 2]]);
    // Three tokens at once, the other five a step each; two rows of one token at once: each a step.
    await expectPrefillMatches(model, [[3, 17, 5, 30, 8, 2, 11, 4, 6]], 3);
    await expectPrefillMatches(
      model,
      [
        [3, 17, 5],
        [9, 9, 1],
      ],
      3,
    );
  });

  it('refuses a prefill into a cache that holds tokens, or of rows of different lengths', async () => {
    const { device, kernels, gw } = await setup(tinyConfig());
    const decoder = new Decoder(device, kernels, gw, null, 8, 2);
    expect(() => decoder.prefill([[1, 2], [3]])).toThrow('a prefill runs the same number of tokens per row');
    expect(() => decoder.prefill([[1, 2]])).toThrow('1 rows of tokens for a decoder of 2');
    expect(() => decoder.prefill([Array(9).fill(1), Array(9).fill(1)])).toThrow(
      "9 tokens do not fit the conversation's 8-token limit",
    );
    decoder.prefill([
      [1, 2],
      [3, 4],
    ]);
    expect(() => decoder.prefill([[1], [2]])).toThrow('a prefill starts a conversation: reset the decoder first');
    decoder.destroy();
  });

  /** Three sequences decoded as rows of one decoder give each the logits a one-row decoder gives it. */
  async function expectRowsMatch({ device, kernels, gw, lora }: Awaited<ReturnType<typeof setup>>) {
    const sequences = [
      [3, 17, 5, 30, 8, 2],
      [9, 9, 1, 0, 36, 4],
      [12, 6, 33, 7, 21, 5],
    ];
    const rows = new Decoder(device, kernels, gw, lora, 8, 3);
    const V = gw.config.vocabSize;
    const together: Float32Array[] = [];
    for (let t = 0; t < 6; t++) together.push(await rows.stepRows(sequences.map((ids) => ids[t])));
    for (const [r, ids] of sequences.entries()) {
      const one = new Decoder(device, kernels, gw, lora, 8);
      for (let t = 0; t < 6; t++) {
        const expected = await one.step(ids[t]);
        expect(maxRelativeError(together[t].subarray(r * V, (r + 1) * V), expected)).toBeLessThan(1e-4);
      }
      one.destroy();
    }
    await expect(rows.stepRows([1, 2])).rejects.toThrow('2 tokens for a decoder of 3 rows');
    rows.destroy();
  }

  for (const [name, config, withLora, half] of cases) {
    it(`decodes several rows together, each as a one-row decoder decodes it: ${name}`, async () => {
      await expectRowsMatch(await setup(config, { lora: withLora, half }));
    });
  }

  it("decodes Gemma 3 on GPUs' kernels (cooperative attention in its window, gemv sets) as on CPU adapters'", async () => {
    const model = await setup(tinyGemmaConfig({ hiddenSize: 32, headDim: 8 }), {
      lora: true,
      targets: [...PROJECTIONS],
    });
    const gpuKernels = new EngineKernels(model.device, GPU_KERNELS);
    const prompt = [3, 17, 5, 30, 8, 2, 9];
    const cpu = new Decoder(model.device, model.kernels, model.gw, model.lora, 16);
    const onGpu = new Decoder(model.device, gpuKernels, model.gw, model.lora, 16);
    let [a, b] = [await cpu.feed(prompt), await onGpu.feed(prompt)];
    for (let n = 0; n < 6; n++) {
      expect(maxRelativeError(b, a)).toBeLessThan(1e-4);
      const next = argmax(a);
      [a, b] = [await cpu.step(next), await onGpu.step(next)];
    }
    cpu.destroy();
    onGpu.destroy();
    await expectRowsMatch({ ...model, kernels: gpuKernels });
  });

  for (const [base, layout] of [
    ['q8', 'CPU'],
    ['q4', 'CPU'],
    ['nf4', 'GPU'],
  ] as const) {
    it(`decodes over a ${base} base (${layout} adapters' kernels) as recomputing does, greedily as the reference on its dequantized weights`, async () => {
      const config = tinyConfig({ hiddenSize: 64, intermediateSize: 128, headDim: 16 });
      const model = await setup(config, { lora: true, targets: [...PROJECTIONS], base });
      const kernels = layout === 'GPU' ? new EngineKernels(model.device, GPU_KERNELS) : model.kernels;
      const prompt = [3, 17, 5, 30, 8];
      const { ids, decoder } = await expectDecodesAsRecomputed(model, kernels, prompt, 6, 16);
      expect(ids.slice(0, 4)).toEqual(referenceGreedy(config, model.weights, model.ref, prompt, 4));
      decoder.destroy();
      await expectRowsMatch({ ...model, kernels });
    });
  }

  it('decodes several rows together over an LM head split into vocabulary chunks', async () => {
    const model = await setup(tinyConfig(), { lora: true, vocabChunkBytes: 24 * 4 * 10 });
    expect(model.gw.lmHead.length).toBeGreaterThan(1);
    await expectRowsMatch(model);
  });

  it('is recorded again when the kernels tune, its products on the variants picked, with the same logits', async () => {
    const model = await setup(tinyConfig(), { lora: true });
    const candidates: MatmulTile[] = [
      { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
    ];
    const kernels = new EngineKernels(model.device, { ...CPU_KERNELS, tune: candidates });
    const rows = new Decoder(model.device, kernels, model.gw, model.lora, 8, 3);
    const labels = () => rows.ops.flatMap((op) => (op.kind === 'dispatch' ? [op.label] : [])).join();
    const untuned = labels();
    expect(await kernels.tuneMatmuls()).toBe(true);
    expect(labels()).not.toEqual(untuned);
    rows.destroy();
    await expectRowsMatch({ ...model, kernels });
  });

  it("decodes several rows together on GPUs' kernels too (tiled matmuls, q/k/v and gate/up as sets, cooperative gemvs)", async () => {
    const model = await setup(tinyConfig({ hiddenSize: 32, headDim: 8 }), { lora: true, half: true });
    const kernels = new EngineKernels(model.device, GPU_KERNELS);
    const rows = new Decoder(model.device, kernels, model.gw, model.lora, 8, 3);
    const sets = rows.ops.filter((op) => op.kind === 'dispatch' && op.label.startsWith('matmul_set'));
    expect(sets.map((op) => op.kind === 'dispatch' && op.label)).toEqual(
      Array.from({ length: model.gw.config.numLayers }, () => ['matmul_set_3', 'matmul_set_2']).flat(),
    );
    rows.destroy();
    // One row's q/k/v are one gemv dispatch; the rows above are checked against it token by token.
    const one = new Decoder(model.device, kernels, model.gw, model.lora, 8);
    const gemvSets = one.ops.filter((op) => op.kind === 'dispatch' && op.label.endsWith('set of 3'));
    expect(gemvSets).toHaveLength(model.gw.config.numLayers);
    one.destroy();
    await expectRowsMatch({ ...model, kernels });
  });

  for (const [drawn, sampling] of [
    ['on the GPU (temperature only)', { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }],
    ['on the GPU (top-k and top-p)', { temperature: 0.8, topK: 8, topP: 0.9, repetitionPenalty: 1 }],
    ['on the CPU (top-k, top-p, repetition penalty)', { temperature: 0.9, topK: 8, topP: 0.9, repetitionPenalty: 1.2 }],
  ] as const) {
    it(`generates after prompts of different lengths at once, each row drawing what generate draws for it, ${drawn}`, async () => {
      const { device, kernels, gw, lora } = await setup(tinyConfig(), { lora: true });
      // Every row's first two tokens are prefilled; the third prompt leaves 4 tokens of room; a fourth row idles.
      const prompts = [
        [5, 9, 2, 30, 4],
        [7, 3, 3],
        [1, 2, 3, 4, 5, 6, 7, 8],
      ];
      const options = { ...sampling, maxNewTokens: 6 };
      const one = new Decoder(device, kernels, gw, lora, 12);
      const free = await generate(one, prompts[0], { ...options, seed: 1, stopIds: [] });
      // A token the first row draws, as a stop token: that row ends at its first draw of it, others may too.
      const stopIds = [free.ids[2]];
      const requests = prompts.map((prompt, i) => ({ prompt, seed: i + 1 }));
      const rows = new Decoder(device, kernels, gw, lora, 12, 4);
      const drawn = await generateRows(rows, requests, { ...options, stopIds });
      for (const [i, { prompt, seed }] of requests.entries()) {
        const expected = await generate(one, prompt, { ...options, seed, stopIds });
        expect(drawn[i]).toMatchObject({ ids: expected.ids, stoppedBy: expected.stoppedBy, stopId: expected.stopId });
      }
      expect(drawn[0]).toMatchObject({ ids: free.ids.slice(0, free.ids.indexOf(stopIds[0])), stoppedBy: 'stop-token' });
      expect(drawn[2].ids.length).toBeLessThanOrEqual(4);
      await expect(generateRows(rows, [...requests, ...requests], { ...options, stopIds })).rejects.toThrow(
        '6 prompts for a decoder of 4 rows',
      );
      one.destroy();
      rows.destroy();
    });
  }

  it('splits the LM head across vocabulary chunks, and the adapter-off decoder is the base model', async () => {
    const config = tinyConfig();
    const chunked = await setup(config, { lora: true, vocabChunkBytes: 24 * 4 * 10 });
    expect(chunked.gw.lmHead.length).toBeGreaterThan(1);
    const whole = await setup(config, { lora: true });
    const prompt = [1, 2, 3, 36];
    const a = await new Decoder(chunked.device, chunked.kernels, chunked.gw, chunked.lora, 8).feed(prompt);
    const b = await new Decoder(whole.device, whole.kernels, whole.gw, whole.lora, 8).feed(prompt);
    expect(maxRelativeError(a, b)).toBeLessThan(1e-5);
    const base = await new Decoder(whole.device, whole.kernels, whole.gw, null, 8).feed(prompt);
    const tuned = await new Decoder(whole.device, whole.kernels, whole.gw, whole.lora, 8).feed(prompt);
    expect(maxRelativeError(base, tuned)).toBeGreaterThan(1e-3);
    const { device, kernels, gw } = await setup(config);
    expect(await new Decoder(device, kernels, gw, null, 8).feed(prompt)).toEqual(base);
  });

  it('refuses a token outside the vocabulary and a conversation past its length', async () => {
    const { device, kernels, gw } = await setup(tinyConfig());
    const decoder = new Decoder(device, kernels, gw, null, 2);
    await expect(decoder.step(37)).rejects.toThrow('token 37 is outside the vocabulary (0..36)');
    await decoder.feed([1, 2]);
    await expect(decoder.step(3)).rejects.toThrow('the conversation reached its 2-token limit');
    decoder.reset();
    expect((await decoder.step(3)).length).toBe(37);
    expect(() => new Decoder(device, kernels, gw, null, 65)).toThrow('does not fit max_position_embeddings 64');
  });
});
