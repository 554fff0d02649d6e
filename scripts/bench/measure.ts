import type { AdapterSummary } from '../../core/adapter';
import type { QuantFormat } from '../../core/base-precision';
import { expectedTensors, type ModelConfig } from '../../core/model-config';
import { estimateTrainingMemory, type TrainingMemory } from '../../core/model-memory';
import { EngineKernels, kernelChoicesFor } from '../../workers/engine/model/kernels';
import type { MatmulTile } from '../../workers/engine/model/matmul-tuner';
import { GpuWeights } from '../../workers/engine/model/weights';
import { GpuMemoryTracker, type MemoryReport } from './gpu-memory';
import { type DecodeResult, measureDecode } from './measure-decode';
import { type MatmulRow, matmulCandidates, measureMatmuls, tileName } from './measure-matmul';
import { buildStep, runSteps, type StepResult } from './measure-step';
import { PEER_LORA, peerTensor } from './peer-workload';
import { type BenchShape, benchConfig, patternTensor, STEP_SHAPES } from './shapes';
import { usefulFlops } from './useful-flops';

/** What a run measures; the browser page gets it as JSON. */
export interface BenchOptions {
  /** The model's shape: SmolLM2-135M's is the peers' workload, the others decode only (see shapes.ts). */
  shape: BenchShape;
  layers: number;
  seq: number;
  batch: number;
  /** Timed steps after the warm-up step. */
  steps: number;
  /** Frozen matrices held as fp16. */
  f16: boolean;
  /** The projections quantized (LoRA over a q8 / q4 / nf4 base); null: as `f16` says. */
  base: QuantFormat | null;
  /** Gradient checkpointing: each layer's activations recomputed in the backward from its kept input. */
  recompute: boolean;
  /** Per-shape matmul tuning of the step: default on hardware adapters. */
  tune: boolean | undefined;
  profile: boolean;
  matmul: boolean;
  step: boolean;
  /** Tokens decoded after a prompt of `decodePrompt` (0: no decode measurement). */
  decode: number;
  decodePrompt: number;
  /** Allocate the training step for the configuration and report its memory, without running anything. */
  allocateOnly: boolean;
  /**
   * Run GPUs' kernel choices (tiled matmuls tuned per product, cooperative rows, attention in workgroup tiles)
   * whatever the adapter: on a software adapter, a check that the hardware path computes the peers' losses at
   * the real shapes before a GPU is at hand (slow there; its speed says nothing).
   */
  gpuKernels: boolean;
  /** Attention in workgroup tiles of this many rows, whatever the adapter (undefined: the adapter's choice). */
  attentionTile?: number;
  /** KernelChoices.groupedKSlices, whatever the adapter (undefined: the adapter's choice). */
  groupedKSlices?: number;
}

export interface BenchResult {
  environment: string;
  adapter: AdapterSummary;
  options: BenchOptions;
  usefulGflop: number;
  matmul: MatmulRow[];
  /** The variant the step was recorded with (or 'per shape' when tuned). */
  stepMatmul: string;
  step: StepResult | null;
  decode: DecodeResult | null;
  memory: MemoryReport;
  /** What the Train step's estimate (core/model-memory) says for the same configuration. */
  estimate: TrainingMemory;
}

/**
 * Everything `npm run bench:engine` measures, on a device it is handed: the same code runs in Node (Dawn) and in
 * the browser page. Order: the matmul products (they also choose the step's variant), then the peers' model
 * uploaded once for the training step and the decoding that follows it.
 */
export async function runBench(
  device: GPUDevice,
  adapter: AdapterSummary,
  environment: string,
  options: BenchOptions,
  log: (line: string) => void,
): Promise<BenchResult> {
  const config = benchConfig(options.shape, options.layers);
  if (!STEP_SHAPES.includes(options.shape) && (options.step || options.allocateOnly)) {
    throw new Error(
      `the training step runs on ${STEP_SHAPES.join(' and ')}'s shapes; with --shape ${options.shape} add --skip-step`,
    );
  }
  // The adapter as the kernel choices see it.
  const kind = options.gpuKernels ? { ...adapter, isFallbackAdapter: false } : adapter;
  const candidates = matmulCandidates(kind.isFallbackAdapter);
  const runsMatmul = options.matmul && !options.allocateOnly;
  const matmul = runsMatmul ? await measureMatmuls(device, candidates, log) : [];
  // The step's variant: the least total time over the measured products (the first candidate when unmeasured).
  const totalSeconds = (name: string) => matmul.filter((r) => r.tile === name).reduce((sum, r) => sum + r.seconds, 0);
  const stepTile = matmul.length
    ? candidates.reduce((a, b) => (totalSeconds(tileName(b)) < totalSeconds(tileName(a)) ? b : a))
    : candidates[0];
  const tune = (options.tune ?? !kind.isFallbackAdapter) && !options.allocateOnly;

  // The adapter's kernel choices, with the step's variant picked above; the bench tunes the step itself.
  const choices = { ...kernelChoicesFor(kind), matmul: stepTile, tune: null };
  if (options.attentionTile) choices.attention = { kind: 'tiles', tile: options.attentionTile };
  if (options.groupedKSlices) choices.groupedKSlices = options.groupedKSlices;
  const kernels = new EngineKernels(device, choices);
  const training = await trainingPhase(device, kernels, config, options, tune ? candidates : null, log);
  const decode =
    options.decode > 0 && !options.allocateOnly
      ? await measureDecode(
          device,
          kernels,
          training.weights,
          { prompt: options.decodePrompt, count: options.decode, profile: options.profile },
          log,
        )
      : null;
  training.weights.destroy();
  return {
    environment,
    adapter,
    options,
    usefulGflop: usefulFlops(config, options.batch, options.seq, PEER_LORA.r).total / 1e9,
    matmul,
    stepMatmul: tune ? 'per shape (tuned)' : tileName(stepTile),
    step: training.step,
    decode,
    memory: training.memory,
    estimate: estimateTrainingMemory(config, {
      batch: options.batch,
      seq: options.seq,
      rank: PEER_LORA.r,
      halfMatrices: options.f16,
      base: options.base ?? 'f16',
      recompute: options.recompute,
    }),
  };
}

/**
 * The peers' model uploaded (kept for decoding after), the step built and, unless only allocating, run; with every
 * buffer of the phase tracked, so its peak is the training configuration's.
 */
async function trainingPhase(
  device: GPUDevice,
  kernels: EngineKernels,
  config: ModelConfig,
  options: BenchOptions,
  tuneCandidates: MatmulTile[] | null,
  log: (line: string) => void,
): Promise<{ weights: GpuWeights; step: StepResult | null; memory: MemoryReport }> {
  const memory = new GpuMemoryTracker(device);
  try {
    const peers = options.shape === 'smollm2-135m';
    const name = peers ? "the peers' model" : `${options.shape}'s shape`;
    const held = `${options.f16 ? ', fp16 matrices' : ''}${options.base ? `, ${options.base} projections` : ''}`;
    log(`uploading ${name} (${config.numLayers} layers${held})`);
    // Allocating only: the values do not matter, so zeros spare generating 135 M random numbers.
    const shapes = expectedTensors(config);
    const source = options.allocateOnly
      ? (key: string) => new Float32Array((shapes.get(key) ?? []).reduce((a, b) => a * b, 1))
      : peers
        ? (key: string) => peerTensor(config, key)
        : (key: string) => patternTensor(shapes.get(key) ?? [], key);
    const weights = await memory.as('weights', () =>
      GpuWeights.upload(device, config, source, { halfMatrices: options.f16, base: options.base }),
    );
    let step: StepResult | null = null;
    if (options.step || options.allocateOnly) {
      const { batch, seq, recompute } = options;
      const built = await buildStep(device, kernels, weights, memory, { batch, seq, recompute, tuneCandidates });
      if (!options.allocateOnly) {
        step = await memory.as('readback', () => runSteps(device, built, options.steps, options.profile, log));
      }
      built.destroy();
    }
    return { weights, step, memory: memory.report() };
  } finally {
    memory.stop();
  }
}
