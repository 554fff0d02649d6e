import { describe, expect, it } from 'vitest';
import { roundToHalf } from '../../../core/float16';
import { type ModelConfig, PROJECTIONS, type Projection } from '../../../core/model-config';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { fromReference, uploadWeights } from '../../../tests/helpers/gpu-model';
import { readConcatenated } from '../gpu/buffers';
import { type Op, submitOps } from '../gpu/ops';
import { dropoutMaskCpu } from '../kernels/dropout.cpu';
import { dequantize, type QuantFormat, quantize } from '../kernels/quant';
import { randomLora, randomWeights, tinyConfig, tinyGemmaConfig } from '../reference/random-model';
import { referenceForwardBackward } from '../reference/transformer.cpu';
import { CPU_KERNELS, EngineKernels, GPU_KERNELS } from './kernels';
import { everyLayer, GpuLora } from './lora';
import { GPU_MATMUL_CANDIDATES } from './matmul-tuner';
import { TransformerStep } from './transformer';
import { GpuWeights } from './weights';

const gpu = setupTestGpu();

/** The weights GpuWeights may hold at half precision: projections, embedding, LM head. */
const isMatrix = (key: string) =>
  key.endsWith('_proj.weight') || key.includes('embed_tokens') || key === 'lm_head.weight';

interface Case {
  name: string;
  config: ModelConfig;
  targets: Projection[];
  full: boolean;
  /** Force the embedding into several chunks and the loss into several logits slices. */
  chunked?: boolean;
  labels?: boolean;
  batch?: number;
  seq?: number;
  rslora?: boolean;
  /** LoRA dropout probability: the reference then gets the masks the GPU draws. */
  dropout?: number;
  /** Matrices held as fp16 on the GPU; the reference gets the same fp16-rounded values. */
  half?: boolean;
  /** The projections quantized on the GPU; the reference gets the dequantized matrices. */
  base?: QuantFormat;
  /** Only each layer's input kept, the rest recomputed in the backward (gradient checkpointing). */
  recompute?: boolean;
  /** LoRA only on these layers (PEFT's layers_to_transform); every layer by default. */
  layers?: number[];
  /**
   * GPUs' kernel choices instead of CPU adapters': 'tuned', matmuls tuned per product and set, and the plan recorded
   * again; 'untuned', every product on the first candidate, so the projections reading one input run as sets;
   * 'split-k', every product on a split-K candidate untuned, so sums of products leave partial sums.
   */
  gpuKernels?: 'tuned' | 'untuned' | 'split-k';
}

const cases: Case[] = [
  { name: 'llama, tied, LoRA on all seven projections', config: tinyConfig(), targets: [...PROJECTIONS], full: false },
  {
    name: 'llama, untied, chunked vocabulary, labels with -100, rsLoRA on q and v',
    config: tinyConfig({ tieWordEmbeddings: false }),
    targets: ['q_proj', 'v_proj'],
    full: false,
    chunked: true,
    labels: true,
    rslora: true,
  },
  {
    name: 'qwen2 (q/k/v bias), full-parameter gradients',
    config: tinyConfig({ modelType: 'qwen2', attentionBias: true }),
    targets: ['k_proj', 'o_proj', 'down_proj'],
    full: true,
    chunked: true,
  },
  {
    name: 'qwen3 (per-head q/k norm, explicit head_dim), full-parameter gradients',
    config: tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8, numHeads: 4, numKvHeads: 1 }),
    targets: ['q_proj', 'k_proj', 'gate_proj', 'up_proj'],
    full: true,
    labels: true,
  },
  {
    name: 'fp16 matrices (qwen2, chunked vocabulary): the same gradients from half the weight memory',
    config: tinyConfig({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false }),
    targets: [...PROJECTIONS],
    full: false,
    chunked: true,
    labels: true,
    half: true,
  },
  {
    name: 'LoRA dropout (p = 0.3): each module draws its own mask, regenerated in the backward',
    config: tinyConfig(),
    targets: ['q_proj', 'o_proj', 'up_proj', 'down_proj'],
    full: true,
    labels: true,
    dropout: 0.3,
  },
  {
    name: 'activations recomputed in the backward (qwen3, LoRA dropout p = 0.3 drawn again), full-parameter gradients',
    config: tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8, numHeads: 4, numKvHeads: 2 }),
    targets: [...PROJECTIONS],
    full: true,
    labels: true,
    dropout: 0.3,
    recompute: true,
  },
  {
    name: 'activations recomputed in the backward, fp16 matrices, chunked vocabulary',
    config: tinyConfig({ tieWordEmbeddings: false }),
    targets: ['q_proj', 'v_proj', 'down_proj'],
    full: false,
    chunked: true,
    half: true,
    recompute: true,
  },
  {
    name: 'activations recomputed in the backward, LoRA on the last of three layers only',
    config: tinyConfig({ numLayers: 3 }),
    targets: ['q_proj', 'down_proj'],
    full: false,
    recompute: true,
    layers: [2],
  },
  {
    name: 'llama3 rope scaling, multi-head (no grouping), one row',
    config: tinyConfig({
      numKvHeads: 4,
      ropeTheta: 500000,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 16,
      },
    }),
    targets: [...PROJECTIONS],
    full: false,
    batch: 1,
    seq: 11,
  },
  {
    name: "GPUs' kernels (tiled matmuls tuned per product, cooperative rows, one attention row per invocation), fp16",
    config: tinyConfig({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: false }),
    targets: [...PROJECTIONS],
    full: false,
    chunked: true,
    labels: true,
    half: true,
    gpuKernels: 'tuned',
  },
  {
    name: "GPUs' kernels untuned (q/k/v, gate/up as sets), full-parameter gradients with LoRA dropout, recomputed",
    config: tinyConfig({ modelType: 'qwen3', qkNorm: true, headDim: 8, numHeads: 4, numKvHeads: 2 }),
    targets: ['q_proj', 'v_proj', 'up_proj'],
    full: true,
    dropout: 0.3,
    recompute: true,
    gpuKernels: 'untuned',
  },
  {
    name: "GPUs' kernels untuned, LoRA on every projection with dropout: the input gradients' partial sums added by the RMSNorm backward",
    config: tinyConfig(),
    targets: [...PROJECTIONS],
    full: false,
    dropout: 0.2,
    gpuKernels: 'untuned',
  },
  {
    name: "GPUs' kernels on split-K: o_proj's and down_proj's slices added by the next norm, forward and backward, recomputed",
    config: tinyConfig({ numLayers: 3 }),
    targets: [...PROJECTIONS],
    full: false,
    dropout: 0.2,
    recompute: true,
    gpuKernels: 'split-k',
  },
  // Gemma 3: scaled embeddings, 1 + w norms, four a layer, GeGLU, q/k norms, local layers' windows (3, in rows of 7)
  // and rotary tables.
  {
    name: 'gemma3, LoRA on all seven projections, labels with -100',
    config: tinyGemmaConfig(),
    targets: [...PROJECTIONS],
    full: false,
    labels: true,
  },
  {
    name: 'gemma3, full-parameter gradients (every norm and the scaled embedding), LoRA dropout, recomputed',
    config: tinyGemmaConfig(),
    targets: ['q_proj', 'o_proj', 'down_proj'],
    full: true,
    dropout: 0.3,
    recompute: true,
  },
  {
    name: 'gemma3, fp16 matrices, chunked vocabulary, untied',
    config: tinyGemmaConfig({ tieWordEmbeddings: false }),
    targets: ['k_proj', 'v_proj', 'gate_proj', 'down_proj'],
    full: false,
    chunked: true,
    half: true,
  },
  {
    name: "gemma3 on GPUs' kernels: o_proj's and down_proj's d(x Aᵀ) written by their output norms' backward, tiled attention",
    config: tinyGemmaConfig(),
    targets: [...PROJECTIONS],
    full: false,
    dropout: 0.2,
    recompute: true,
    gpuKernels: 'tuned',
    seq: 19,
  },
  // A quantized base (rows of whole 64-weight groups; 8-bit tables): the reference runs on the dequantized weights.
  {
    name: 'q4 base (llama), LoRA on all seven projections, labels with -100',
    config: tinyConfig({ hiddenSize: 64, intermediateSize: 128, headDim: 16 }),
    targets: [...PROJECTIONS],
    full: false,
    labels: true,
    base: 'q4',
  },
  {
    name: 'nf4 base, 8-bit tables (qwen2, untied, chunked vocabulary, logits in slices of chunks), recomputed',
    config: tinyConfig({
      modelType: 'qwen2',
      attentionBias: true,
      tieWordEmbeddings: false,
      hiddenSize: 64,
      intermediateSize: 128,
      headDim: 16,
    }),
    targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
    full: false,
    chunked: true,
    half: true,
    recompute: true,
    base: 'nf4',
  },
  {
    name: "q8 base, gemma3 on GPUs' kernels untuned (quantized products run separately), LoRA dropout",
    config: tinyGemmaConfig({ hiddenSize: 64, intermediateSize: 128, headDim: 16 }),
    targets: [...PROJECTIONS],
    full: false,
    dropout: 0.2,
    gpuKernels: 'untuned',
    base: 'q8',
  },
];

/** A projection's [out, in] from its key, for the quantized-base cases. */
const projectionDims = (config: ModelConfig, key: string): readonly [number, number] | null => {
  const { hiddenSize: d, intermediateSize: f, numHeads: H, numKvHeads: KV, headDim: hd } = config;
  const match = /\.(q|k|v|o|gate|up|down)_proj\.weight$/.exec(key);
  if (!match) return null;
  return (
    {
      q: [H * hd, d],
      k: [KV * hd, d],
      v: [KV * hd, d],
      o: [d, H * hd],
      gate: [f, d],
      up: [f, d],
      down: [d, f],
    } as const
  )[match[1] as 'q'];
};

describe('the WebGPU transformer step against the float64 CPU reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const { device } = gpu();
      const config = c.config;
      const [batch, seq] = [c.batch ?? 2, c.seq ?? 7];
      const weights = randomWeights(config, 1);
      if (c.half) {
        for (const [key, values] of weights) if (isMatrix(key)) weights.set(key, roundToHalf(values));
      }
      // The GPU quantizes the float32 weights it is handed (the tables at 8 bits, a scale a row, whatever their
      // chunks); the reference reads them dequantized.
      const reference = new Map(weights);
      for (const [key, values] of c.base ? weights : []) {
        const table = key === 'model.embed_tokens.weight' || key === 'lm_head.weight';
        const dims = table ? ([config.vocabSize, config.hiddenSize] as const) : projectionDims(config, key);
        if (!dims || !c.base) continue;
        const format = table ? 'q8' : c.base;
        const words = quantize(Float32Array.from(values), dims[0], dims[1], format);
        reference.set(key, Float64Array.from(dequantize(words, dims[0], dims[1], format)));
      }
      const rank = 3;
      const refLora = randomLora(config, c.targets, rank, 5, c.rslora ?? false, 2);
      const onLayer = (layer: number) => !c.layers || c.layers.includes(layer);
      for (const key of refLora.modules.keys()) if (!onLayer(Number(key.split('.')[0]))) refLora.modules.delete(key);
      const tokens = Array.from({ length: batch }, (_, b) =>
        Array.from({ length: seq }, (_, t) => (b * 13 + t * 7 + 3) % config.vocabSize),
      );
      const labels = c.labels ? tokens.map((row) => row.map((id, t) => (t % 3 === 1 ? -100 : id))) : undefined;

      // GPUs' choices tune among a workgroup-memory tile and a split-K of the candidates: all nine would take the
      // software adapter most of a minute to compile.
      const gpuChoices = {
        ...GPU_KERNELS,
        matmul: c.gpuKernels === 'split-k' ? { ...GPU_KERNELS.matmul, splitK: 3 } : GPU_KERNELS.matmul,
        tune: c.gpuKernels === 'tuned' ? GPU_MATMUL_CANDIDATES.filter((t, i) => i === 0 || t.splitK === 4) : null,
      };
      const kernels = new EngineKernels(device, c.gpuKernels ? gpuChoices : CPU_KERNELS);
      const maxChunkBytes = c.chunked ? 10 * config.hiddenSize * 4 : undefined;
      const gw = await uploadWeights(device, config, weights, {
        vocabChunkBytes: maxChunkBytes,
        halfMatrices: c.half,
        base: c.base,
      });
      const lora = GpuLora.create(
        device,
        config,
        {
          r: rank,
          loraAlpha: 5,
          useRslora: c.rslora ?? false,
          loraDropout: c.dropout ?? 0,
          modules: everyLayer(config, c.targets).filter((m) => onLayer(m.layer)),
        },
        fromReference(refLora),
      );
      const step = new TransformerStep(
        device,
        kernels,
        gw,
        lora,
        { batch, seq },
        {
          full: c.full,
          maxLogitsBytes: c.chunked ? batch * seq * 4 * 7 : undefined,
          recompute: c.recompute,
        },
      );
      if (c.gpuKernels === 'tuned') expect(await kernels.tuneMatmuls()).toBe(true);
      const labelled = (ops: Op[], label: string) =>
        ops.filter((op) => op.kind === 'dispatch' && (op.label === label || op.label.startsWith(`${label}_`)));
      const layers = config.numLayers;
      if (c.gpuKernels === 'untuned') {
        // A layer's projections as four sets in the forward (q/k/v, o, gate/up, down); in the backward, replayed
        // (recompute, down_proj's product left out) and their input gradients as four sums, reduced by a pass of
        // their own only where several products' sum is followed by full mode's weight gradients (else the norm
        // backward adds the partial sums, and a product alone goes straight into its output).
        // A quantized base's products run separately.
        const sets = c.base ? 0 : 1;
        expect(labelled(step.forwardOps, 'matmul_set')).toHaveLength(4 * layers * sets);
        expect(labelled(step.backwardOps, 'matmul_set')).toHaveLength((c.recompute ? 7 : 4) * layers * sets);
        expect(labelled(step.backwardOps, 'matmul_split_k_reduce')).toHaveLength(c.full ? 2 * layers : 0);
      }
      if (c.gpuKernels === 'split-k') {
        // Reduce passes only for the LM head's logits (its backward's K, 37 tokens of vocabulary, does not split in
        // three) and o_proj's input gradient, read by attention; o_proj's and down_proj's slices are added by the
        // norm after them (every block's but the first's input norm).
        expect(labelled(step.forwardOps, 'matmul_split_k_reduce')).toHaveLength(1);
        expect(labelled(step.backwardOps, 'matmul_split_k_reduce')).toHaveLength(layers);
        expect(labelled(step.forwardOps, 'rmsnorm_forward_carry_slabs')).toHaveLength(2 * layers - 1);
        expect(labelled(step.forwardOps, 'rmsnorm_forward_slabs')).toHaveLength(1);
        // Replayed, each block's MLP norm adds o_proj's slices and carries nothing on (down_proj is left out).
        expect(labelled(step.backwardOps, 'rmsnorm_forward_slabs')).toHaveLength(layers);
        expect(labelled(step.backwardOps, 'rmsnorm_forward_carry_slabs')).toHaveLength(0);
        // o_proj's and down_proj's d(x Aᵀ) written by the norm backward that writes their dy: the final norm's,
        // each block's MLP norm's, and every block's but the first's input norm's.
        expect(labelled(step.backwardOps, 'rmsnorm_backward_low_rank')).toHaveLength(2 * layers);
        // q/k/v's and gate/up's x Aᵀ written by the norm before them: grouped dispatches only for o_proj's and
        // down_proj's, in the forward and in the replay (which leaves out down_proj's base product, not its x Aᵀ).
        expect(labelled(step.forwardOps, 'grouped_matmul')).toHaveLength(2 * layers);
        expect(labelled(step.forwardOps, 'rmsnorm_forward_carry_slabs_lora')).toHaveLength(2 * layers - 1);
      }
      step.setBatch(tokens, labels);
      if (c.dropout) {
        const seed = 1234;
        step.setDropoutSeed(seed);
        refLora.dropoutMasks = new Map(
          lora.modules.map((m) => [
            `${m.layer}.${m.projection}`,
            dropoutMaskCpu(batch * seq * m.inDim, seed, m.index, c.dropout ?? 0),
          ]),
        );
      }
      device.pushErrorScope('validation');
      submitOps(device, [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps]);
      expect(await device.popErrorScope()).toBeNull();

      const ref = referenceForwardBackward(config, reference, refLora, tokens, labels, { full: c.full });
      const loss = await step.readLoss();
      expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
      const grads = await lora.readGradients(device);
      for (const [key, g] of ref.loraGrads) {
        const got = grads.get(key);
        expect(got, key).toBeDefined();
        expect(maxRelativeError(got?.A ?? [], g.A), `${key} A`).toBeLessThan(1e-4);
        expect(maxRelativeError(got?.B ?? [], g.B), `${key} B`).toBeLessThan(1e-4);
      }
      if (c.full) {
        for (const [key, g] of ref.weightGrads) {
          const buffers = step.weightGrads?.get(key);
          expect(buffers, key).toBeDefined();
          const got = await readConcatenated(device, buffers ?? [], g.length);
          expect(maxRelativeError(got, g), key).toBeLessThan(1e-4);
        }
      }
      step.destroy();
      lora.destroy();
      gw.destroy();
    });
  }
});

describe('GpuWeights', () => {
  it('refuses a tensor over the binding limit by name, rather than failing on the GPU', async () => {
    const { device } = gpu();
    const config = tinyConfig();
    const weights = randomWeights(config, 1);
    const source = (key: string) => Float32Array.from(weights.get(key) ?? []);
    // Embedding rows are 96 bytes; q_proj is 24 x 24 floats = 2304 bytes.
    await expect(GpuWeights.upload(device, config, source, { bindingLimit: 2000 })).rejects.toThrow(
      /model\.layers\.0\.self_attn\.q_proj\.weight needs 2304 bytes, over this GPU's 2000-byte/,
    );
    await expect(GpuWeights.upload(device, config, source, { bindingLimit: 64 })).rejects.toThrow(
      /model\.embed_tokens\.weight: one row/,
    );
  });

  it('quantizes the projections of a base at 8 or 4 bits, and refuses rows of part groups by tensor', async () => {
    const { device } = gpu();
    const config = tinyConfig({ hiddenSize: 64, intermediateSize: 128, headDim: 16 });
    const weights = randomWeights(config, 1);
    const source = (key: string) => Float32Array.from(weights.get(key) ?? []);
    const sizes: Record<string, number> = {};
    for (const base of [null, 'q8', 'q4'] as const) {
      const gw = await GpuWeights.upload(device, config, source, { base });
      expect(gw.projectionFormat).toBe(base ?? 'f32');
      sizes[base ?? 'f32'] = gw.layers[0].proj.down_proj.size;
      gw.destroy();
    }
    // down_proj [64, 128]: 32 KiB in fp32; a byte a weight and a scale word a row; half a byte and a scale per 32.
    expect(sizes).toEqual({ f32: 32768, q8: 8192 + 256, q4: 4096 + 512 });
    const narrow = randomWeights(tinyConfig(), 1);
    const narrowSource = (key: string) => Float32Array.from(narrow.get(key) ?? []);
    await expect(GpuWeights.upload(device, tinyConfig(), narrowSource, { base: 'q4' })).rejects.toThrow(
      'tensor model.layers.0.self_attn.q_proj.weight: q4 needs rows of a multiple of 32 weights, not 24; pick another base precision',
    );
  });
});
