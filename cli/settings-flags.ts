/**
 * `hone train`'s settings flags: each one a field of the studio's TrainSettings, its default shown from the settings
 * module the Train step uses (core/training/settings.ts).
 */
import type { ModelConfig, Projection } from '../core/model-config';
import { parameterCount } from '../core/model-memory';
import {
  defaultLearningRate,
  defaultSettings,
  type Method,
  SCHEDULES,
  type Schedule,
  type TrainSettings,
} from '../core/training/settings';
import { CHANGEABLE_ON_RESUME } from '../workers/engine/train/trainer';
import { type Flag, type FlagValues, numberFlag } from './command';

/** Each settings flag's field. `beta` is DPO's beta, or for grpo the KL penalty's (TRL names both `beta`). */
export const SETTING_FLAGS = {
  'max-steps': 'maxSteps',
  epochs: 'epochs',
  lr: 'lr',
  'lora-r': 'loraR',
  'lora-alpha': 'loraAlpha',
  'lora-dropout': 'loraDropout',
  targets: 'targets',
  rslora: 'rslora',
  full: 'full',
  'batch-size': 'batchSize',
  'grad-accum': 'gradAccum',
  'seq-len': 'seqLen',
  recompute: 'recompute',
  warmup: 'warmup',
  schedule: 'schedule',
  'weight-decay': 'weightDecay',
  'max-grad-norm': 'maxGradNorm',
  seed: 'seed',
  'eval-every': 'evalEvery',
  'checkpoint-every': 'checkpointEvery',
  'checkpoint-minutes': 'checkpointMinutes',
  beta: 'dpoBeta',
  'group-size': 'groupSize',
  'max-completion': 'maxCompletion',
  temperature: 'temperature',
} as const satisfies Record<string, keyof TrainSettings>;

type SettingFlag = keyof typeof SETTING_FLAGS;

/** The flags a resumed run may change (see the trainer's CHANGEABLE_ON_RESUME). */
export const LENGTH_FLAGS: string[] = Object.entries(SETTING_FLAGS)
  .filter(([, key]) => CHANGEABLE_ON_RESUME.includes(key))
  .map(([flag]) => flag);

const SWITCHES: SettingFlag[] = ['rslora', 'full', 'recompute'];

const HELP: Record<SettingFlag, [string | undefined, string]> = {
  'max-steps': ['N', 'stop after N optimizer steps, whatever the epochs say'],
  epochs: ['N', 'passes over the training data'],
  lr: ['X', 'the peak learning rate'],
  'lora-r': ['N', 'the LoRA rank'],
  'lora-alpha': ['X', "LoRA's alpha (the adapter is scaled by alpha / r)"],
  'lora-dropout': ['X', "dropout on LoRA's input"],
  targets: ['LIST', 'the projections LoRA adapts, comma-separated'],
  rslora: [undefined, 'rank-stabilized LoRA (scaled by alpha / sqrt(r))'],
  full: [undefined, 'train every weight instead of an adapter (tiny models)'],
  'batch-size': ['N', 'sequences (pairs, prompts) a micro-batch'],
  'grad-accum': ['N', 'micro-batches an optimizer step'],
  'seq-len': ['N', 'the longest sequence in tokens'],
  recompute: [undefined, 'gradient checkpointing: less memory, a third more work, the same numbers'],
  warmup: ['X', 'warm-up steps, or below 1 a fraction of the steps'],
  schedule: ['S', `the learning rate's schedule: ${SCHEDULES.join(', ')}`],
  'weight-decay': ['X', "AdamW's weight decay"],
  'max-grad-norm': ['X', 'clip the gradient to this norm; 0 is off'],
  seed: ['N', 'seeds the data order and dropout'],
  'eval-every': ['N', 'a validation every N steps (and at the end); 0 only at the end'],
  'checkpoint-every': ['N', 'a resumable checkpoint every N steps (and at the end)'],
  'checkpoint-minutes': ['X', 'a resumable checkpoint once X minutes passed since the last; 0 is off'],
  beta: ['X', "DPO's beta; for grpo the KL penalty's weight"],
  'group-size': ['N', 'grpo: completions sampled per prompt'],
  'max-completion': ['N', 'grpo: the longest completion in tokens'],
  temperature: ['X', 'grpo: the sampling temperature'],
};

/** What help shows as a flag's default, from the studio's defaults. */
function shownDefault(flag: SettingFlag): string | number | boolean | undefined {
  const sft = defaultSettings('sft', 0);
  switch (flag) {
    case 'lr': {
      const lr = (parameters: number, full = false) => defaultLearningRate('sft', parameters, full);
      return `${lr(1e6)} under 20M parameters, ${lr(1e8)} under 600M, ${lr(1e9)} above; a tenth for dpo and grpo; with --full ${lr(1e6, true)}, ${lr(1e8, true)}, ${lr(1e9, true)}`;
    }
    case 'epochs':
      return `${sft.epochs} (${defaultSettings('cpt', 0).epochs} for cpt and grpo)`;
    case 'max-steps':
      return undefined;
    case 'targets':
      return sft.targets.join(',');
    case 'beta':
      return `${sft.dpoBeta} (grpo: ${sft.klBeta})`;
    default:
      return sft[SETTING_FLAGS[flag]] as string | number | boolean;
  }
}

/** The settings flags, for the command's flag table. */
export function settingsFlags(): Record<SettingFlag, Flag> {
  return Object.fromEntries(
    (Object.keys(SETTING_FLAGS) as SettingFlag[]).map((flag) => {
      const [value, help] = HELP[flag];
      return [flag, { value, help, default: shownDefault(flag) }];
    }),
  ) as Record<SettingFlag, Flag>;
}

/** The settings the flags given set (only those). */
export function flagSettings(values: FlagValues, method: Method): Partial<TrainSettings> {
  const out: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(SETTING_FLAGS) as [SettingFlag, keyof TrainSettings][]) {
    const given = values[flag];
    if (given === undefined || given === false) continue;
    const field = flag === 'beta' && method === 'grpo' ? 'klBeta' : key;
    if (SWITCHES.includes(flag)) out[field] = true;
    else if (flag === 'targets')
      out[field] = String(given)
        .split(',')
        .map((t) => t.trim() as Projection);
    else if (flag === 'schedule') {
      if (!SCHEDULES.includes(given as Schedule)) {
        throw new Error(`--schedule must be one of ${SCHEDULES.join(', ')}, not '${given}'`);
      }
      out[field] = given;
    } else out[field] = numberFlag(values, flag);
  }
  return out as Partial<TrainSettings>;
}

/** The studio's defaults for the method and the model's size, with the flags given on top. */
export function settingsFrom(values: FlagValues, method: Method, config: ModelConfig): TrainSettings {
  const given = flagSettings(values, method);
  return { ...defaultSettings(method, parameterCount(config), given.full ?? false), ...given };
}
