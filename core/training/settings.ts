/**
 * Training settings: what each method trains on, defaults that work per method and model size, and the checks
 * that refuse a bad combination before any GPU work starts, each with its reason.
 */
import type { DatasetFormat } from '../dataset/formats';
import { type ModelConfig, PROJECTIONS, type Projection } from '../model-config';

export const METHODS = {
  cpt: 'Continued pretraining (raw text)',
  sft: 'Supervised fine-tuning (instructions, chats)',
  rm: 'Reward model (preference pairs)',
  grpo: 'Policy optimization (RL prompts and a reward)',
  dpo: 'Direct preference optimization (preference pairs)',
} as const;
export type Method = keyof typeof METHODS;

/** The method a dataset of a format trains with unless a person picks another (DPO for pairs: one step to a policy). */
export function methodForFormat(format: DatasetFormat): Method | undefined {
  const preference: Method[] = ['cpt', 'sft', 'dpo', 'rm', 'grpo'];
  return preference.find((m) => METHOD_FORMATS[m].includes(format));
}

export const SCHEDULES = ['constant', 'linear', 'cosine'] as const;
export type Schedule = (typeof SCHEDULES)[number];

/** The dataset formats each method trains on. */
export const METHOD_FORMATS: Record<Method, readonly DatasetFormat[]> = {
  cpt: ['text'],
  sft: ['alpaca', 'prompt_completion', 'messages', 'sharegpt'],
  rm: ['preference'],
  grpo: ['rl_prompts'],
  dpo: ['preference'],
};

export interface TrainSettings {
  method: Method;
  /** Train every weight instead of a LoRA adapter (tiny models only: it needs fp32 weights and their moments). */
  full: boolean;
  loraR: number;
  loraAlpha: number;
  loraDropout: number;
  targets: Projection[];
  rslora: boolean;
  lr: number;
  schedule: Schedule;
  /** Warm-up steps; below 1, a fraction of the total steps. */
  warmup: number;
  epochs: number;
  /** Stops after this many optimizer steps when set, whatever the epochs say. */
  maxSteps: number | null;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  /**
   * Gradient checkpointing: keep only each layer's input and recompute the rest in the backward, for a fraction of
   * the activation memory at about a third more work. It changes no number the run computes.
   */
  recompute: boolean;
  weightDecay: number;
  /** Global gradient-norm clipping; 0 turns it off. */
  maxGradNorm: number;
  seed: number;
  /** Validation loss every this many steps; 0 only at the end. */
  evalEvery: number;
  /** A resumable checkpoint every this many steps; 0 never. */
  checkpointEvery: number;
  /** A resumable checkpoint once this many minutes of training passed since the last; 0 never. */
  checkpointMinutes: number;
  /** DPO's beta: how far from the reference model the preferences may pull the policy (TRL's default, 0.1). */
  dpoBeta: number;
  /** Policy optimization: completions sampled per prompt, the group each is judged against. */
  groupSize: number;
  /** Policy optimization: the longest completion sampled, in tokens. */
  maxCompletion: number;
  /** Policy optimization: the sampling temperature. */
  temperature: number;
  /** Policy optimization: the weight of the KL penalty to the base model (the adapter off); 0 drops it. */
  klBeta: number;
}

/**
 * How a dataset is read for training unless a person says otherwise (the Data step's defaults, and `hone`'s): the
 * longest sequence in tokens, the records held out for validation (a fraction, or a count) and the seed that picks
 * them, and whether the prompt's tokens carry loss.
 */
export const DEFAULT_DATA = { maxLength: 512, validation: 0.1, splitSeed: 42, trainOnPrompt: false } as const;

/**
 * The default learning rate. An adapter's grows as the model shrinks (a tiny model's adapter needs large steps);
 * preference and reward losses take a tenth, since they move a policy far with small steps. Training every weight
 * moves the model itself: rates like fine-tuning's usual ones, a tenth of hone-tiny's pretraining peak (3e-3) for
 * tiny models.
 */
export function defaultLearningRate(method: Method, parameters: number, full: boolean): number {
  if (full) return parameters < 20e6 ? 3e-4 : parameters < 600e6 ? 2e-5 : 1e-5;
  const lr = parameters < 20e6 ? 1e-2 : parameters < 600e6 ? 3e-4 : 1e-4;
  return method === 'dpo' || method === 'grpo' ? lr / 10 : lr;
}

/**
 * Defaults that train visibly in a short run: LoRA on every projection at rank 16 (alpha 32), or with `full` every
 * weight; the learning rate for the method, the model's size and that choice; cosine decay after a short warm-up.
 */
export function defaultSettings(method: Method, parameters: number, full = false): TrainSettings {
  return {
    method,
    full,
    loraR: 16,
    loraAlpha: 32,
    loraDropout: 0.05,
    targets: [...PROJECTIONS],
    rslora: false,
    lr: defaultLearningRate(method, parameters, full),
    schedule: 'cosine',
    warmup: 0.05,
    epochs: method === 'cpt' || method === 'grpo' ? 1 : 3,
    maxSteps: null,
    batchSize: 4,
    gradAccum: 1,
    seqLen: DEFAULT_DATA.maxLength,
    recompute: false,
    weightDecay: 0,
    maxGradNorm: 1,
    seed: 42,
    evalEvery: 50,
    checkpointEvery: 50,
    checkpointMinutes: 1,
    dpoBeta: 0.1,
    groupSize: 4,
    maxCompletion: 48,
    temperature: 1,
    klBeta: 0.04,
  };
}

/**
 * The settings training every weight or not; a learning rate still at the one choice's default becomes the other's.
 */
export function withFull(s: TrainSettings, full: boolean, parameters: number): TrainSettings {
  const wasDefault = s.lr === defaultLearningRate(s.method, parameters, s.full);
  return { ...s, full, lr: wasDefault ? defaultLearningRate(s.method, parameters, full) : s.lr };
}

/** Why the defaults are what they are, a sentence each, for the model's size, the method and training every weight. */
export function defaultsExplained(method: Method, parameters: number, full = false): string[] {
  const s = defaultSettings(method, parameters, full);
  const size =
    parameters < 20e6 ? 'a tiny model' : parameters < 600e6 ? 'a model under 600M parameters' : 'a model this size';
  return [
    full
      ? 'Every weight trained: the model itself changes, with gradients and optimizer state for all of it.'
      : `LoRA rank ${s.loraR} (alpha ${s.loraAlpha}) on all seven projections: enough capacity for most tasks, a few MB of adapter.`,
    full
      ? `Learning rate ${s.lr} for every weight of ${size}: the weights are the model itself, so their steps are far smaller than an adapter's.`
      : `Learning rate ${s.lr} for ${size}${
          method === 'dpo' || method === 'grpo'
            ? ', a tenth of the supervised rate, since preferences and rewards move a policy far'
            : ''
        }; small models' adapters need larger steps.`,
    `Cosine decay after a warm-up of ${s.warmup * 100}% of the steps: the steadiest ending for short runs.`,
    `${s.epochs} epoch${s.epochs === 1 ? '' : 's'} over the data${method === 'cpt' || method === 'grpo' ? '' : ', so a small dataset is seen enough times'}; max steps, when set, stops the run earlier.`,
    `Batches of ${s.batchSize} (gradient accumulation multiplies them without the memory), gradients clipped at norm ${s.maxGradNorm}, a validation every ${s.evalEvery} steps, and a checkpoint every ${s.checkpointEvery} steps or ${s.checkpointMinutes} minute${s.checkpointMinutes === 1 ? '' : 's'}, whichever comes first, so a reload loses little.`,
  ];
}

const isWhole = (n: number, min: number) => Number.isInteger(n) && n >= min;

/**
 * Every reason the settings cannot train this model on this dataset, or none. `format` is the dataset's format;
 * `sequences` how many training sequences it holds.
 */
export function settingsProblems(
  s: TrainSettings,
  context: { config: ModelConfig; format?: DatasetFormat; sequences?: number },
): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, reason: string) => {
    if (!ok) problems.push(reason);
  };
  need(s.method in METHODS, `unknown method "${s.method}"; the methods are ${Object.keys(METHODS).join(', ')}`);
  if (!s.full) {
    need(isWhole(s.loraR, 1), `the LoRA rank must be a whole number of at least 1, not ${s.loraR}`);
    need(s.loraAlpha > 0, `LoRA alpha must be above 0, not ${s.loraAlpha}`);
    need(s.loraDropout >= 0 && s.loraDropout < 1, `LoRA dropout must be in [0, 1), not ${s.loraDropout}`);
    need(s.targets.length > 0, 'LoRA needs at least one target module');
    const unknown = s.targets.filter((t) => !PROJECTIONS.includes(t));
    need(
      unknown.length === 0,
      `unknown target modules ${unknown.join(', ')}; the targets are ${PROJECTIONS.join(', ')}`,
    );
  }
  need(s.lr > 0 && s.lr < 1, `the learning rate must be above 0 and below 1, not ${s.lr}`);
  need(SCHEDULES.includes(s.schedule), `unknown schedule "${s.schedule}"; the schedules are ${SCHEDULES.join(', ')}`);
  need(s.warmup >= 0, `warm-up must be 0 or more, not ${s.warmup}`);
  need(s.maxSteps !== null || s.epochs > 0, `epochs must be above 0, not ${s.epochs}`);
  need(
    s.maxSteps === null || isWhole(s.maxSteps, 1),
    `max steps must be a whole number of at least 1, not ${s.maxSteps}`,
  );
  need(isWhole(s.batchSize, 1), `the batch size must be a whole number of at least 1, not ${s.batchSize}`);
  need(isWhole(s.gradAccum, 1), `gradient accumulation must be a whole number of at least 1, not ${s.gradAccum}`);
  need(isWhole(s.seqLen, 2), `the sequence length must be a whole number of at least 2, not ${s.seqLen}`);
  need(
    s.seqLen <= context.config.maxPositionEmbeddings,
    `the sequence length ${s.seqLen} is past the model's max_position_embeddings, ${context.config.maxPositionEmbeddings}`,
  );
  need(s.weightDecay >= 0, `weight decay must be 0 or more, not ${s.weightDecay}`);
  need(s.maxGradNorm >= 0, `gradient clipping must be 0 (off) or more, not ${s.maxGradNorm}`);
  need(isWhole(s.seed, 0), `the seed must be a whole number of at least 0, not ${s.seed}`);
  need(isWhole(s.evalEvery, 0), `evaluation every N steps needs a whole N of 0 or more, not ${s.evalEvery}`);
  need(
    isWhole(s.checkpointEvery, 0),
    `checkpoints every N steps need a whole N of 0 or more, not ${s.checkpointEvery}`,
  );
  need(s.checkpointMinutes >= 0, `checkpoints every N minutes need an N of 0 or more, not ${s.checkpointMinutes}`);
  need(s.dpoBeta > 0, `DPO's beta must be above 0, not ${s.dpoBeta}`);
  need(isWhole(s.groupSize, 2), `the group size must be a whole number of at least 2, not ${s.groupSize}`);
  need(
    isWhole(s.maxCompletion, 1),
    `the longest completion must be a whole number of at least 1 token, not ${s.maxCompletion}`,
  );
  need(s.temperature > 0, `the sampling temperature must be above 0, not ${s.temperature}`);
  need(s.klBeta >= 0, `the KL penalty's beta must be 0 (off) or more, not ${s.klBeta}`);
  need(
    !(s.method === 'grpo' && s.full),
    'policy optimization trains a LoRA adapter: its KL reference is the same model with the adapter off',
  );
  need(
    !(s.method === 'rm' && s.full),
    'a reward model is saved as a PEFT adapter (LoRA and its score head): train it with LoRA, not every weight',
  );
  need(
    !(s.method === 'dpo' && s.full),
    'DPO trains a LoRA adapter: its reference is the same model with the adapter off, which full training would change',
  );
  if (context.format !== undefined && s.method in METHODS) {
    const formats = METHOD_FORMATS[s.method];
    need(
      formats.includes(context.format),
      `${METHODS[s.method]} trains on ${formats.join(' or ')} data; this dataset is ${context.format}`,
    );
  }
  if (context.sequences !== undefined) need(context.sequences > 0, 'the dataset has nothing to train on');
  return problems;
}
