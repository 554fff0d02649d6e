import { type BasePrecision, defaultBasePrecision, quantBytes, wholeGroups } from './base-precision';
import { expectedTensors, type ModelConfig, PROJECTIONS, type Projection, projectionShape } from './model-config';

/** Parameters of the base model, counted from the tensors its architecture needs. */
export function parameterCount(config: ModelConfig): number {
  let total = 0;
  for (const shape of expectedTensors(config).values()) total += shape.reduce((a, b) => a * b, 1);
  return total;
}

/** The limits that bound one storage binding. */
export interface BindingLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/**
 * The base precision `config`'s model loads at unless another is picked: defaultBasePrecision at its size; on a GPU
 * (its `limits`, and whether it holds matrices at fp16) whose binding limit a matrix passes at that precision, the
 * first smaller one (8-bit, then 4-bit) it fits at.
 */
export function defaultBaseOf(
  config: ModelConfig,
  gpu?: { limits: BindingLimits; halfMatrices: boolean },
): BasePrecision {
  const bySize = defaultBasePrecision(config, parameterCount(config));
  if (!gpu) return bySize;
  const order: BasePrecision[] = ['f16', 'q8', 'q4'];
  const fits = (base: BasePrecision) =>
    (base === 'f16' || wholeGroups(config, base)) &&
    checkFit(estimateTrainingMemory(config, { halfMatrices: gpu.halfMatrices, base }), gpu.limits).fits;
  return order.slice(order.indexOf(bySize)).find(fits) ?? bySize;
}

/** How the base weights are held: matrices at fp16 (`halfMatrices`, else fp32), projections quantized by `base`. */
export interface HeldWeights {
  halfMatrices?: boolean;
  base?: BasePrecision;
}

/**
 * Bytes of the base weights on the GPU: fp32, or with `halfMatrices` the matrices (projections, embedding, LM
 * head) at fp16; with a quantized `base` the projections quantized and the tables at 8 bits; norms and biases at
 * fp32. (The tables' chunks round their 8-bit scales to whole words: a few bytes a chunk, not counted.)
 */
export function weightBytes(config: ModelConfig, { halfMatrices = false, base = 'f16' }: HeldWeights): number {
  let total = 0;
  for (const [key, shape] of expectedTensors(config)) {
    const matrix = !key.endsWith('norm.weight') && !key.endsWith('.bias');
    if (!matrix) total += 4 * shape.reduce((a, b) => a * b, 1);
    else
      total += matrixBytes(shape[0], shape[1], {
        halfMatrices,
        base: key.endsWith('_proj.weight') ? base : tables(base),
      });
  }
  return total;
}

/** A quantized base's tables (embedding, LM head): 8-bit. */
const tables = (base: BasePrecision): BasePrecision => (base === 'f16' ? 'f16' : 'q8');

/** Bytes of a [rows, cols] matrix held at `base` (16-bit: fp16 with `halfMatrices`, else fp32). */
function matrixBytes(rows: number, cols: number, { halfMatrices = false, base = 'f16' }: HeldWeights): number {
  return base === 'f16' ? (halfMatrices ? 2 : 4) * rows * cols : quantBytes(base, rows, cols);
}

export interface TrainingMemory {
  /**
   * Weights on the GPU: the base model as held (fp32, or with `halfMatrices` its matrices at fp16); with `full`
   * the fp32 weights being trained, plus with `keepsBase` the base model held beside them.
   */
  weights: number;
  /** Activations kept for the backward, and scratch, for one [batch, seq] step. */
  activations: number;
  /** What is trained, with its gradients and Adam moments: the LoRA adapter, or with `full` every weight. */
  adapter: number;
  total: number;
  /** The largest tensor that must sit in one binding (the vocabulary tables are split, so not those). */
  largestBinding: number;
}

/**
 * GPU bytes a training step needs, following what the engine allocates: per layer the saved activations (with
 * `recompute`, gradient checkpointing, only each layer's input, plus one layer's set to recompute into), the
 * backward's scratch and the loss's logits slice (with `reference`, also policy optimization's
 * forward-only step for its KL reference, which keeps one layer's set; with `sampler`, its decoder's key-value
 * caches, one per row of the step, as long as the step); the weights at fp32, or with
 * `halfMatrices` (how LoRA runs hold them on GPUs) the matrices at fp16, the projections quantized with a `base`
 * below 16-bit; the adapter's parameters, gradients and
 * moments, or with `full` those of every weight, which are trained at fp32 (with `keepsBase`, a copy: the studio
 * keeps the loaded model too, for Compare's base side and later runs).
 */
export function estimateTrainingMemory(
  config: ModelConfig,
  {
    batch = 1,
    seq = 512,
    rank = 16,
    targets = PROJECTIONS,
    full = false,
    halfMatrices = false,
    base = 'f16',
    keepsBase = false,
    recompute = false,
    reference = false,
    sampler = false,
  }: {
    batch?: number;
    seq?: number;
    rank?: number;
    targets?: readonly Projection[];
    full?: boolean;
    halfMatrices?: boolean;
    base?: BasePrecision;
    keepsBase?: boolean;
    recompute?: boolean;
    reference?: boolean;
    sampler?: boolean;
  } = {},
): TrainingMemory {
  const { hiddenSize: d, intermediateSize: f, numHeads: H, numKvHeads: KV, headDim: hd, numLayers: L } = config;
  const N = batch * seq;
  // Per layer: the buffers of transformer.ts's LayerActivations (attention keeps a log-sum-exp per query and head;
  // Gemma keeps its two block outputs before their norms, and their rstd).
  const gemma = config.gemma ? 1 : 0;
  const layerSet =
    N * (5 * d + 2 * H * hd + 2 * KV * hd + 3 * f + 2 + H + gemma * (2 * d + 2)) + N * rank * targets.length;
  const kept = recompute ? layerSet + (L - 1) * N * d : L * layerSet;
  // Shared by the layers: the forward's (the final norm's input and output, a head's gradient, q and k before their
  // norms, the loss's statistics) and the logits slice, and the backward's gradients of each activation and of each
  // module's x A^T (a forward-only step has none of those).
  const forward = N * (3 * d + 2 * H * hd + 2 * KV * hd + 5) + Math.min(N * config.vocabSize, (64 * 2 ** 20) / 4);
  const backward = N * ((2 + gemma) * d + 3 * f + 4 * H * hd + 4 * KV * hd + H) + N * rank * targets.length;
  const caches = sampler ? 2 * L * N * KV * hd : 0;
  const activations = 4 * (kept + forward + backward + (reference ? layerSet + forward : 0) + caches);
  const params = parameterCount(config);
  const adapterParams = L * targets.reduce((n, p) => n + rank * projectionShape(config, p).reduce((a, b) => a + b), 0);
  // Parameters, gradients and two Adam moments: for the adapter's, or every weight's (their parameters are the
  // weights themselves, counted there).
  const adapter = full ? 3 * 4 * params : 4 * 4 * adapterParams;
  const held = weightBytes(config, { halfMatrices, base: full ? 'f16' : base });
  const weights = full ? 4 * params + (keepsBase ? held : 0) : held;
  // The largest projection as held (a full-parameter run trains every one at fp32).
  const largestBinding = Math.max(
    ...[f, H * hd].map((rows) => matrixBytes(rows, d, full ? {} : { halfMatrices, base })),
  );
  return { weights, activations, adapter, total: weights + activations + adapter, largestBinding };
}

/**
 * Whether training fits the adapter's limits. WebGPU does not report how much memory a GPU has, so the hard
 * check is the one it does report: each weight that cannot be split must fit one storage binding.
 */
export function checkFit(memory: TrainingMemory, limits: BindingLimits): { fits: boolean; reason: string } {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (memory.largestBinding > limit) {
    return {
      fits: false,
      reason: `Will not fit: its largest weight needs ${memory.largestBinding} bytes in one buffer, and this GPU allows ${limit}.`,
    };
  }
  return {
    fits: true,
    reason: 'Fits this GPU’s buffer limits (the browser does not say how much memory the GPU has).',
  };
}
