/**
 * A run's trainer from what the page sends: the dataset prepared with the same code as `hone train`, the adapter
 * it continues checked against the settings, policy optimization's reward loaded. Starting a run and timing one
 * both build it here, so the estimate measures the very steps the run will take.
 */

import type { BasePrecision } from '../../../core/base-precision';
import { type LoadedAdapter, loadAdapter } from '../../../core/checkpoint';
import type { DatasetFile } from '../../../core/dataset/read-records';
import { pickedFilesReader } from '../../../core/export/unzip-folder';
import type { ModelConfig } from '../../../core/model-config';
import type { ModelTokenizer } from '../../../core/tokenizer';
import { type AdapterShape, adapterShape } from '../../../core/training/continue-adapter';
import { type DataChoice, type PreparedRun, prepareRun } from '../../../core/training/prepare';
import { rlSequenceLength } from '../../../core/training/sequences';
import type { TrainSettings } from '../../../core/training/settings';
import type { EngineKernels } from '../model/kernels';
import type { GpuWeights } from '../model/weights';
import { createTrainer } from './create-trainer';
import type { RuleWorker } from './js-reward';
import { type RewardChoice, rewardFromChoice } from './reward-choice';
import type { RewardSource } from './rewards';
import type { Trainer } from './trainer';

export interface TrainRequest {
  /** The model the run belongs to (its label), so a saved run is resumed on the same model. */
  model: string;
  settings: TrainSettings;
  data: DataChoice;
  /** Policy optimization's reward. */
  reward?: RewardChoice;
  /** An adapter folder (or its zip) the run continues, in its own LoRA shape. */
  initialAdapter?: { name: string; files: { path: string; file: Blob }[] };
  /** The base precision the model was loaded at when the run began (the session fills it in); resumed at it. */
  base?: BasePrecision;
}

/** The GPU device, its kernels, and how this platform runs a reward rule's worker. */
export interface Engine {
  device: GPUDevice;
  kernels: EngineKernels;
  spawnRuleWorker: () => RuleWorker;
}

export interface ModelOnGpu {
  label: string;
  config: ModelConfig;
  tokenizer: ModelTokenizer;
  /** The loaded weights, never trained: LoRA runs and generation read them (on GPUs their matrices are fp16). */
  weights: GpuWeights;
  /** A new fp32 copy of the weights, read again from the model's files, for a run that trains every weight. */
  fp32Copy(): Promise<GpuWeights>;
}

/** A run ready for its first step. */
export interface BuiltRun {
  prepared: PreparedRun;
  trainer: Trainer<unknown>;
  /**
   * The weights its steps read: the loaded ones for LoRA, or the run's own fp32 copy when it trains every weight
   * (so the loaded model stays the base, for comparing and for later runs).
   */
  weights: GpuWeights;
  /** Frees the trainer and the run's own copy of the weights. */
  destroy(): void;
}

/** Why the run cannot start, every reason at once. */
export class RunRefusedError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'RunRefusedError';
  }
}

/**
 * The adapter a run continues, checked against the model and the run: its LoRA shape must be the settings' (the
 * Train step takes it over when the adapter is picked). What is wrong is added to `problems`.
 */
async function continuedAdapter(
  picked: NonNullable<TrainRequest['initialAdapter']>,
  settings: TrainSettings,
  config: ModelConfig,
  problems: string[],
): Promise<LoadedAdapter | null> {
  if (settings.full) {
    problems.push('continuing an adapter trains LoRA: turn off training every weight');
    return null;
  }
  const task = settings.method === 'rm' ? 'SEQ_CLS' : 'CAUSAL_LM';
  const adapter = await loadAdapter(await pickedFilesReader(picked.files), picked.name, config, task);
  const shape = adapterShape(adapter.config, picked.name);
  for (const key of Object.keys(shape) as (keyof AdapterShape)[]) {
    if (JSON.stringify(settings[key]) !== JSON.stringify(shape[key])) {
      problems.push(`${picked.name} has ${key} ${shape[key]}, the settings ${settings[key]}: continue it in its shape`);
    }
  }
  return adapter;
}

/** The prepared data and a trainer ready for its first step; throws RunRefusedError with every problem found. */
export async function buildRun(
  engine: Engine,
  model: ModelOnGpu,
  request: TrainRequest,
  files: DatasetFile[],
): Promise<BuiltRun> {
  if (request.model !== model.label) {
    throw new Error(`the run was made on ${request.model}; ${model.label} is loaded`);
  }
  const { settings } = request;
  const prepared = await prepareRun(files, request.data, model.tokenizer, model.config, settings);
  const problems = [...prepared.problems];
  const initial =
    request.initialAdapter && (await continuedAdapter(request.initialAdapter, settings, model.config, problems));
  if (prepared.data.kind === 'prompts' && !request.reward) {
    problems.push('policy optimization needs a reward: write a rule or pick a reward model');
  }
  if (problems.length > 0) throw new RunRefusedError(problems);
  const copy = settings.full ? await model.fp32Copy() : null;
  const weights = copy ?? model.weights;
  const onGpu = { device: engine.device, kernels: engine.kernels, weights };
  let reward: RewardSource | undefined;
  try {
    reward =
      prepared.data.kind === 'prompts' && request.reward
        ? await rewardFromChoice(
            request.reward,
            onGpu,
            {
              rows: settings.batchSize * settings.groupSize,
              seq: rlSequenceLength(prepared.data, settings.seqLen, settings.maxCompletion),
            },
            { policyTokenizer: model.tokenizer, spawnRuleWorker: engine.spawnRuleWorker },
          )
        : undefined;
    const trainer = await createTrainer(onGpu, {
      settings,
      data: prepared.data,
      tokenizer: model.tokenizer,
      reward,
      initial: initial ?? undefined,
    });
    return {
      prepared,
      trainer,
      weights,
      destroy: () => {
        trainer.destroy();
        copy?.destroy();
      },
    };
  } catch (error) {
    reward?.destroy();
    copy?.destroy();
    throw error;
  }
}
