/**
 * The README.md an exported adapter carries: Hugging Face's model-card front matter, what was trained on what, the
 * settings, the final metrics, and how to load it with PEFT.
 */
import type { MetricRecord } from '../training/metrics';
import { METHODS, type TrainSettings } from '../training/settings';

export interface CardMetrics {
  steps: number;
  /** The last training step's loss. */
  trainLoss: number | null;
  validationLoss: number | null;
  validationAccuracy: number | null;
  validationReward: number | null;
}

/** An evaluation's summary, as the card's table shows it. */
export interface CardEvaluation {
  /** Examples scored. */
  examples: number;
  contestants: string[];
  /** Per metric, each contestant's mean and 95% bootstrap interval, in the contestants' order. */
  metrics: { name: string; scores: { mean: number; low: number; high: number }[] }[];
}

export interface CardInfo {
  /** The Hub id (or name) of the base model. */
  baseModel: string;
  /** The base is a Hub repo; else a folder (Hone's demo model, a local model): loaded from its path. */
  baseOnHub?: boolean;
  settings: TrainSettings;
  /** The dataset as the run read it, when known. */
  data: { files: string[]; format: string; train: number; validation: number; unit: string } | null;
  metrics: CardMetrics;
  /** The run's evaluation in the studio, when one was kept. */
  evaluation?: CardEvaluation | null;
}

const figure = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(3));

/** `## Evaluation`: a metric per row, a model per column, mean [95% interval]. */
function evaluationLines(e: CardEvaluation): string[] {
  return [
    '## Evaluation',
    '',
    `Scored with Hone on ${e.examples} examples, every model answering with the same decoding settings and seed ` +
      '(mean, with its 95% bootstrap interval):',
    '',
    `| metric | ${e.contestants.join(' | ')} |`,
    `|---|${e.contestants.map(() => '---|').join('')}`,
    ...e.metrics.map(
      (m) =>
        `| ${m.name} | ${m.scores.map((s) => `${figure(s.mean)} [${figure(s.low)}, ${figure(s.high)}]`).join(' | ')} |`,
    ),
    '',
  ];
}

const SETTINGS_SHOWN: [keyof TrainSettings, string][] = [
  ['loraR', 'LoRA rank'],
  ['loraAlpha', 'LoRA alpha'],
  ['loraDropout', 'LoRA dropout'],
  ['targets', 'target modules'],
  ['rslora', 'rsLoRA'],
  ['lr', 'learning rate'],
  ['schedule', 'schedule'],
  ['warmup', 'warm-up'],
  ['epochs', 'epochs'],
  ['maxSteps', 'max steps'],
  ['batchSize', 'batch size'],
  ['gradAccum', 'gradient accumulation'],
  ['seqLen', 'sequence length'],
  ['recompute', 'gradient checkpointing'],
  ['weightDecay', 'weight decay'],
  ['maxGradNorm', 'gradient clipping'],
  ['seed', 'seed'],
];

const METHOD_SETTINGS: Partial<Record<TrainSettings['method'], [keyof TrainSettings, string][]>> = {
  dpo: [['dpoBeta', 'DPO beta']],
  grpo: [
    ['groupSize', 'completions per prompt'],
    ['maxCompletion', 'longest completion'],
    ['temperature', 'sampling temperature'],
    ['klBeta', 'KL penalty (beta)'],
  ],
};

const show = (value: unknown) => (Array.isArray(value) ? value.join(', ') : String(value ?? '—'));

export function modelCard(info: CardInfo): string {
  const { settings: s, data, metrics: m } = info;
  const onHub = info.baseOnHub ?? info.baseModel.includes('/');
  // Not on the Hub, the base is loaded from its folder: the snippet names a path, and the front matter no base_model.
  const baseModel = onHub ? info.baseModel : `path/to/${info.baseModel}`;
  const reward = s.method === 'rm';
  const lines = [
    '---',
    ...(onHub ? [`base_model: ${baseModel}`] : []),
    'library_name: peft',
    `pipeline_tag: ${reward ? 'text-classification' : 'text-generation'}`,
    'tags:',
    '- hone',
    '- lora',
    `- ${s.method}`,
    '---',
    '',
    `# ${info.baseModel}: ${reward ? 'reward model' : 'LoRA adapter'} (${METHODS[s.method]})`,
    '',
    `Fine-tuned in the browser with Hone, on WebGPU: a LoRA adapter${reward ? ' and a score head' : ''} for \`${info.baseModel}\`, in PEFT's format.`,
    '',
    '## Data',
    '',
    data
      ? `${data.files.join(', ')}: ${data.format} data, ${data.train} training and ${data.validation} validation ${data.unit}.`
      : 'Not recorded.',
    '',
    '## Settings',
    '',
    '| setting | value |',
    '|---|---|',
    // Runs kept from before a setting existed lack it: left out rather than shown as undefined.
    ...[...SETTINGS_SHOWN, ...(METHOD_SETTINGS[s.method] ?? [])]
      .filter(([key]) => s[key] !== undefined)
      .map(([key, label]) => `| ${label} | ${show(s[key])} |`),
    '',
    '## Results',
    '',
    `After ${m.steps} steps: ${[
      m.trainLoss !== null && `training loss ${m.trainLoss.toFixed(4)}`,
      m.validationLoss !== null && `validation loss ${m.validationLoss.toFixed(4)}`,
      m.validationAccuracy !== null && `${(100 * m.validationAccuracy).toFixed(1)}% of held-out pairs ranked right`,
      m.validationReward !== null && `mean reward on held-out prompts ${m.validationReward.toFixed(4)}`,
    ]
      .filter(Boolean)
      .join(', ')}. Every step's figures are in \`metrics.jsonl\`.`,
    '',
    ...(info.evaluation ? evaluationLines(info.evaluation) : []),
    '## Use',
    '',
    ...(onHub
      ? []
      : [
          `\`${info.baseModel}\` is not on the Hugging Face Hub: load it from its folder (Hone's demo model, hone-tiny, is \`public/models/hone-tiny\` in Hone's repository).`,
          '',
        ]),
    '```python',
    'from peft import PeftModel',
    ...(reward
      ? [
          'from transformers import AutoModelForSequenceClassification, AutoTokenizer',
          '',
          `tokenizer = AutoTokenizer.from_pretrained("${baseModel}")`,
          '# Scores are read at the last token that is not the pad token: keep the pad token Hone trained with.',
          `base = AutoModelForSequenceClassification.from_pretrained("${baseModel}", num_labels=1, pad_token_id=tokenizer.pad_token_id)`,
          'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
        ]
      : [
          'from transformers import AutoModelForCausalLM, AutoTokenizer',
          '',
          `tokenizer = AutoTokenizer.from_pretrained("${baseModel}")`,
          `base = AutoModelForCausalLM.from_pretrained("${baseModel}")`,
          'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
        ]),
    '```',
    '',
  ];
  return lines.join('\n');
}

/** The figures a card reports, from a run's metric records (`metrics.jsonl` lines). */
export function cardMetrics(records: readonly MetricRecord[]): CardMetrics {
  const train = records.filter((r) => r.type === 'train').at(-1);
  const evaluation = records.flatMap((r) => (r.type === 'eval' ? [r] : [])).at(-1);
  return {
    steps: train?.step ?? 0,
    trainLoss: train?.loss ?? null,
    validationLoss: evaluation?.validationLoss ?? null,
    validationAccuracy: evaluation?.validationAccuracy ?? null,
    validationReward: evaluation?.validationReward ?? null,
  };
}
