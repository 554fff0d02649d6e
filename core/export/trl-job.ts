/**
 * A run as a job for GPU servers: the dataset as Hone read and split it, in TRL's conversational formats, and a
 * TRL script with the same method, LoRA settings and hyperparameters. The adapter it writes is PEFT's, so it
 * imports back into Hone's Compare step.
 */
import type { Example, Message } from '../dataset/formats';
import type { TrainSettings } from '../training/settings';

const plain = (messages: Message[]) => messages.map(({ role, content }) => ({ role, content }));

/**
 * The records in the TRL format its method reads: raw text as `text`; a preference pair as prompt, chosen and
 * rejected; an RL prompt as `prompt` and its reference. A conversation is TRL's conversational prompt-completion:
 * one record per answer that carries loss, the conversation before it as the prompt, so every answer is trained
 * with the loss on it alone, as Hone's labels put it (a record of the last answer only would leave earlier ones
 * as context). With prompt loss the conversation is one record, its last answer the completion, so each token is
 * trained once (weight-0 answers then carry loss too: TRL has no per-message weights).
 */
export function trlRecords(example: Example, o: { trainOnPrompt: boolean }): Record<string, unknown>[] {
  switch (example.kind) {
    case 'text':
      return [{ text: example.text }];
    case 'chat': {
      const { messages } = example;
      const answers = messages.flatMap((m, i) => (m.role === 'assistant' && m.weight !== 0 ? [i] : []));
      const ends = o.trainOnPrompt ? [messages.map((m) => m.role).lastIndexOf('assistant')] : answers;
      return ends.map((i) => ({ prompt: plain(messages.slice(0, i)), completion: plain([messages[i]]) }));
    }
    case 'preference':
      return [{ prompt: plain(example.prompt), chosen: plain(example.chosen), rejected: plain(example.rejected) }];
    case 'prompt':
      return [
        example.reference === undefined
          ? { prompt: plain(example.prompt) }
          : { prompt: plain(example.prompt), reference: example.reference },
      ];
  }
}

export function trlJsonl(examples: Example[], o: { trainOnPrompt: boolean }): string {
  return examples.flatMap((e) => trlRecords(e, o).map((r) => `${JSON.stringify(r)}\n`)).join('');
}

const py = (value: unknown): string => {
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (value === null || value === undefined) return 'None';
  return JSON.stringify(value);
};

const SCHEDULERS: Record<TrainSettings['schedule'], string> = {
  constant: 'constant_with_warmup',
  linear: 'linear',
  cosine: 'cosine',
};

export interface JobOptions {
  baseModel: string;
  hasValidation: boolean;
  /** Loss on the prompt tokens too (Hone's "prompt loss"). */
  trainOnPrompt: boolean;
  /** Policy optimization's reward rule in JavaScript, carried as a comment for its Python port. */
  rewardRule?: string;
}

/** A ready-to-run TRL script (train.py) for the run's method and settings. */
export function trlScript(s: TrainSettings, o: JobOptions): string {
  const config = {
    sft: 'SFTConfig',
    cpt: 'SFTConfig',
    dpo: 'DPOConfig',
    rm: 'RewardConfig',
    grpo: 'GRPOConfig',
  }[s.method];
  const trainerClass = {
    sft: 'SFTTrainer',
    cpt: 'SFTTrainer',
    dpo: 'DPOTrainer',
    rm: 'RewardTrainer',
    grpo: 'GRPOTrainer',
  }[s.method];
  const args: [string, unknown][] = [
    ['output_dir', 'output'],
    ['learning_rate', s.lr],
    ['lr_scheduler_type', SCHEDULERS[s.schedule]],
    // transformers 5 reads a warm-up below 1 as a fraction of the steps, as Hone does.
    ['warmup_steps', s.warmup],
    s.maxSteps !== null ? ['max_steps', s.maxSteps] : ['num_train_epochs', s.epochs],
    // TRL counts GRPO's batch in completions: the prompts times their group.
    ['per_device_train_batch_size', s.method === 'grpo' ? s.batchSize * s.groupSize : s.batchSize],
    ['gradient_accumulation_steps', s.gradAccum],
    ['gradient_checkpointing', s.recompute],
    ['weight_decay', s.weightDecay],
    ['max_grad_norm', s.maxGradNorm],
    ['seed', s.seed],
    ['logging_steps', 1],
    ['save_steps', s.checkpointEvery > 0 ? s.checkpointEvery : 500],
  ];
  if (o.hasValidation && s.evalEvery > 0) args.push(['eval_strategy', 'steps'], ['eval_steps', s.evalEvery]);
  if (s.method === 'sft' || s.method === 'cpt') args.push(['max_length', s.seqLen]);
  if (s.method === 'cpt') args.push(['packing', true], ['dataset_text_field', 'text']);
  if (s.method === 'sft') args.push(['completion_only_loss', !o.trainOnPrompt]);
  if (s.method === 'dpo') args.push(['beta', s.dpoBeta], ['max_length', s.seqLen]);
  if (s.method === 'rm') args.push(['max_length', s.seqLen]);
  if (s.method === 'grpo') {
    args.push(
      ['num_generations', s.groupSize],
      ['max_completion_length', s.maxCompletion],
      ['temperature', s.temperature],
      ['beta', s.klBeta],
    );
  }
  const reward = s.method === 'rm';
  const lines = [
    `# Hone job: ${s.method} on ${o.baseModel}, with the settings of the Train step. On a GPU server:`,
    '#   pip install "trl>=1.0" "transformers>=5" peft datasets accelerate',
    '#   python train.py        # or: accelerate launch train.py, on several GPUs',
    '# The adapter lands in ./output in PEFT format: import that folder into Hone to compare it there.',
    'from datasets import load_dataset',
    ...(s.full ? [] : ['from peft import LoraConfig']),
    ...(reward ? ['from transformers import AutoModelForSequenceClassification, AutoTokenizer'] : []),
    `from trl import ${config}, ${trainerClass}`,
    '',
    `files = {"train": "train.jsonl"${o.hasValidation ? ', "validation": "validation.jsonl"' : ''}}`,
    'data = load_dataset("json", data_files=files)',
  ];
  if (!s.full) {
    lines.push(
      'peft_config = LoraConfig(',
      `    r=${s.loraR},`,
      `    lora_alpha=${py(s.loraAlpha)},`,
      `    lora_dropout=${py(s.loraDropout)},`,
      `    target_modules=${py(s.targets)},`,
      `    use_rslora=${py(s.rslora)},`,
      `    task_type="${reward ? 'SEQ_CLS' : 'CAUSAL_LM'}",`,
      ')',
    );
  }
  lines.push(`args = ${config}(`, ...args.map(([k, v]) => `    ${k}=${py(v)},`), ')');
  let model = py(o.baseModel);
  if (reward) {
    lines.push(
      `tokenizer = AutoTokenizer.from_pretrained(${py(o.baseModel)})`,
      `model = AutoModelForSequenceClassification.from_pretrained(${py(o.baseModel)}, num_labels=1, pad_token_id=tokenizer.pad_token_id)`,
    );
    model = 'model';
  }
  const extra: string[] = [];
  if (s.method === 'grpo') {
    lines.push(
      '',
      '',
      'def reward(prompts, completions, reference=None, **kwargs):',
      '    """The reward of each completion: port the Train step\'s rule (below) to Python, or pass a reward',
      '    model\'s Hub id or path as reward_funcs instead."""',
      ...(o.rewardRule ?? '').split('\n').map((line) => `    # ${line}`.trimEnd()),
      '    raise NotImplementedError("write the reward in Python")',
      '',
      '',
    );
    extra.push('    reward_funcs=reward,');
  }
  lines.push(
    `trainer = ${trainerClass}(`,
    `    model=${model},`,
    '    args=args,',
    ...extra,
    '    train_dataset=data["train"],',
    ...(o.hasValidation ? ['    eval_dataset=data["validation"],'] : []),
    ...(s.full ? [] : ['    peft_config=peft_config,']),
    ')',
    'trainer.train()',
    'trainer.save_model("output")',
    '',
  );
  return lines.join('\n');
}
