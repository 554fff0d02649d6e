/**
 * What `hone train` reads from disk into the run's request, as the Train step's pickers do: the adapter a run
 * continues and policy optimization's reward, both as files, checked before any GPU work.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { loadAdapter, type ReadFile } from '../core/checkpoint';
import type { ModelConfig } from '../core/model-config';
import { adapterShape } from '../core/training/continue-adapter';
import type { Method, TrainSettings } from '../core/training/settings';
import type { TrainRequest } from '../workers/engine/train/build-run';
import type { RewardChoice } from '../workers/engine/train/reward-choice';
import type { FlagValues } from './command';
import { exists, folderReader } from './folder';
import { modelSource } from './model-source';

type PickedFiles = { path: string; file: Blob }[];

/** The named files `read` finds, as picked files. */
async function pick(read: ReadFile, names: string[]): Promise<PickedFiles> {
  const files: PickedFiles = [];
  for (const path of names) {
    const file = await read(path);
    if (file) files.push({ path, file });
  }
  return files;
}

const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

/** A file's bytes as a Blob, refused by the flag's name when missing. */
async function fileFlag(flag: string, path: string): Promise<Blob> {
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`--${flag} ${path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  return new Blob([bytes]);
}

/**
 * The adapter `--adapter` continues, its LoRA shape taken into `settings` (as the Train step takes it over when one
 * is picked); flags that ask for another shape are refused rather than ignored.
 */
export async function continuedAdapter(
  values: FlagValues,
  settings: TrainSettings,
  config: ModelConfig,
): Promise<NonNullable<TrainRequest['initialAdapter']>> {
  const { read, label } = modelSource(String(values.adapter));
  if (settings.full) throw new Error('--adapter continues a LoRA adapter; --full trains every weight instead');
  const adapter = await loadAdapter(read, label, config, settings.method === 'rm' ? 'SEQ_CLS' : 'CAUSAL_LM');
  const shape = adapterShape(adapter.config, label);
  const flags: [string, keyof typeof shape][] = [
    ['lora-r', 'loraR'],
    ['lora-alpha', 'loraAlpha'],
    ['targets', 'targets'],
    ['rslora', 'rslora'],
  ];
  for (const [flag, key] of flags) {
    const given = values[flag] !== undefined && values[flag] !== false;
    if (given && JSON.stringify(settings[key]) !== JSON.stringify(shape[key])) {
      throw new Error(
        `--${flag} asks for ${settings[key]}, but the adapter ${label} has ${shape[key]}: leave it out to continue it`,
      );
    }
  }
  Object.assign(settings, shape);
  return { name: label, files: await pick(read, ADAPTER_FILES) };
}

/** The reward flags, each a way to give a reward. */
const REWARD_FLAGS = ['reward-model', 'reward-js', 'reward-onnx'] as const;
type RewardFlag = (typeof REWARD_FLAGS)[number];

/**
 * Policy optimization's reward from exactly one of --reward-model DIR (a reward adapter trained with --method rm),
 * --reward-js FILE (a rule) or --reward-onnx FILE (with its folder's tokenizer files); undefined for the other
 * methods, which refuse the flags.
 */
export async function rewardChoice(values: FlagValues, method: Method): Promise<RewardChoice | undefined> {
  const given = REWARD_FLAGS.filter((f) => values[f] !== undefined);
  if (method !== 'grpo') {
    if (given.length > 0) throw new Error(`--${given[0]} gives policy optimization its reward; it needs --method grpo`);
    return undefined;
  }
  if (given.length !== 1) {
    throw new Error(
      'policy optimization needs one reward: --reward-model DIR (trained with --method rm), --reward-js FILE ' +
        `or --reward-onnx FILE${given.length > 1 ? `, not ${given.map((f) => `--${f}`).join(' and ')}` : ''}`,
    );
  }
  return rewardFromFlag(given[0], String(values[given[0]]));
}

/** A reward model from --reward-model DIR or --reward-onnx FILE, for `hone eval` to score answers; at most one. */
export async function scoringReward(values: FlagValues): Promise<RewardChoice | undefined> {
  const given = (['reward-model', 'reward-onnx'] as const).filter((f) => values[f] !== undefined);
  if (given.length > 1) throw new Error('give one reward model: --reward-model DIR or --reward-onnx FILE, not both');
  return given.length === 0 ? undefined : rewardFromFlag(given[0], String(values[given[0]]));
}

/** The reward a flag's file or folder holds. */
async function rewardFromFlag(flag: RewardFlag, path: string): Promise<RewardChoice> {
  if (flag === 'reward-model') {
    const { read, label } = modelSource(path);
    const files = await pick(read, ADAPTER_FILES);
    if (files.length === 0) throw new Error(`--reward-model ${path}: no adapter_config.json there`);
    return { kind: 'reward-model', name: label, files };
  }
  if (flag === 'reward-js') {
    return { kind: 'rule', name: basename(path), source: await (await fileFlag(flag, path)).text() };
  }
  const model = { path: basename(path), file: await fileFlag(flag, path) };
  // Its own tokenizer when its folder has one; otherwise it reads text as the policy does.
  const folder = dirname(path);
  const tokenizer = (await exists(join(folder, 'tokenizer.json')))
    ? await pick(folderReader(folder), ['tokenizer.json', 'tokenizer_config.json'])
    : [];
  return { kind: 'onnx', name: basename(path), files: [model, ...tokenizer] };
}
