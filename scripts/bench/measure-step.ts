import { submitOps } from '../../workers/engine/gpu/ops';
import { type KernelTime, profileOps } from '../../workers/engine/gpu/profile';
import type { EngineKernels } from '../../workers/engine/model/kernels';
import { GpuLora } from '../../workers/engine/model/lora';
import type { MatmulTile } from '../../workers/engine/model/matmul-tuner';
import { AdamW } from '../../workers/engine/model/optimizer';
import { TransformerStep } from '../../workers/engine/model/transformer';
import type { GpuWeights } from '../../workers/engine/model/weights';
import type { GpuMemoryTracker } from './gpu-memory';
import { PEER_ADAMW, peerLoraInit, peerLoraSettings, peerTokens } from './peer-workload';

export interface StepSetup {
  batch: number;
  seq: number;
  recompute: boolean;
  /** Time each distinct product of the step on `tuneCandidates` and record the step again with the fastest. */
  tuneCandidates: MatmulTile[] | null;
}

/** The peers' LoRA training step recorded over `weights`, every allocation attributed to its owner. */
export async function buildStep(
  device: GPUDevice,
  kernels: EngineKernels,
  weights: GpuWeights,
  memory: GpuMemoryTracker,
  setup: StepSetup,
) {
  const config = weights.config;
  const lora = await memory.as('LoRA parameters and gradients', () =>
    GpuLora.create(device, config, peerLoraSettings(config), peerLoraInit),
  );
  const record = () =>
    memory.as(
      'activations and scratch',
      () =>
        new TransformerStep(
          device,
          kernels,
          weights,
          lora,
          { batch: setup.batch, seq: setup.seq },
          { full: false, recompute: setup.recompute },
        ),
    );
  let step = await record();
  let tunedShapes = 0;
  const candidates = setup.tuneCandidates;
  if (candidates) {
    // Recording the plan told the tuner every product it needs; time them, then record the plan again.
    tunedShapes = await memory.as('matmul tuning', () => kernels.matmuls.tune(candidates));
    step.destroy();
    step = await record();
  }
  const optimizer = await memory.as(
    'optimizer (Adam moments)',
    () => new AdamW(device, kernels, [{ param: lora.params, grad: lora.grads, n: lora.length }], PEER_ADAMW),
  );
  const destroy = () => {
    step.destroy();
    optimizer.destroy();
    lora.destroy();
  };
  return { config, step, lora, optimizer, tunedShapes, destroy };
}

export interface StepResult {
  /** Median seconds of the timed steps (after one warm-up step), as the peers report. */
  secondsPerStep: number;
  stepSeconds: number[];
  /** The loss before each AdamW update: the first is the untrained model's. */
  losses: number[];
  dispatchesPerStep: number;
  loraParams: number;
  tunedShapes: number;
  profile: KernelTime[];
}

/** One warm-up step and `timedSteps` timed ones on the peers' tokens; with `profile`, GPU time per kernel after. */
export async function runSteps(
  device: GPUDevice,
  built: Awaited<ReturnType<typeof buildStep>>,
  timedSteps: number,
  profile: boolean,
  log: (line: string) => void,
): Promise<StepResult> {
  const { step, optimizer, lora } = built;
  const { batch, seq } = step.shape;
  const { tokens, targets } = peerTokens(built.config.vocabSize, batch, seq);
  step.setBatchTargets(tokens, targets);
  const ops = [...step.zeroGradOps, ...step.forwardOps, ...step.backwardOps, ...optimizer.ops];
  const stepSeconds: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i <= timedSteps; i++) {
    optimizer.prepareStep();
    const started = performance.now();
    submitOps(device, ops);
    // The loss is read after the optimizer's ops in the same queue, so this waits for the whole step.
    losses.push(await step.readLoss());
    stepSeconds.push((performance.now() - started) / 1000);
    log(`step ${i + 1}: ${stepSeconds[i].toFixed(2)} s, loss ${losses[i].toFixed(6)}`);
  }
  let kernelTimes: KernelTime[] = [];
  if (profile) {
    optimizer.prepareStep();
    kernelTimes = await profileOps(device, ops);
  }
  return {
    secondsPerStep: median(stepSeconds.slice(1)),
    stepSeconds,
    losses,
    dispatchesPerStep: ops.length,
    loraParams: lora.length,
    tunedShapes: built.tunedShapes,
    profile: kernelTimes,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
