import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type LoadedAdapter, loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { DATASET_FORMATS, type DatasetFormat } from '../../core/dataset/formats';
import { DatasetError } from '../../core/dataset/load-dataset';
import { adapterFolderFiles } from '../../core/export/adapter-folder';
import { baseModelId } from '../../core/export/base-model-id';
import { elementCount, modelFolderFiles } from '../../core/export/merge';
import type { ModelConfig, Projection } from '../../core/model-config';
import { parameterCount } from '../../core/model-memory';
import { loadTokenizer } from '../../core/tokenizer';
import { adapterShape } from '../../core/training/continue-adapter';
import { prepareRun } from '../../core/training/prepare';
import { rlSequenceLength } from '../../core/training/sequences';
import {
  defaultSettings,
  METHODS,
  type Method,
  SCHEDULES,
  type Schedule,
  type TrainSettings,
} from '../../core/training/settings';
import { EngineKernels, kernelChoicesFor } from '../../workers/engine/model/kernels';
import { tuningStoreFor } from '../../workers/engine/model/tuning-store';
import { GpuWeights } from '../../workers/engine/model/weights';
import { CHECKPOINT_FILES, parseCheckpoint, serializeCheckpoint } from '../../workers/engine/train/checkpoint-files';
import { createTrainer } from '../../workers/engine/train/create-trainer';
import { evalRecord, runTraining, type StepMetrics, type Validation } from '../../workers/engine/train/trainer';
import { numberFlag, parseMapping } from '../args';
import { defaultCacheDir, diskCache } from '../disk-cache';
import { datasetFiles, exists } from '../folder';
import { modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';
import { readRewardFlags } from '../reward-flags';

export const TRAIN_USAGE =
  'hone train --model M --data FILE[,FILE...] --method cpt|sft|rm|grpo|dpo --out DIR [settings] [--resume]';

const SETTINGS_HELP = `settings: --max-steps N --epochs N --lr X --lora-r N --lora-alpha X --lora-dropout X
  --targets q_proj,v_proj,... --rslora --full --batch-size N --grad-accum N --seq-len N --recompute (gradient
  checkpointing: less memory, a third more work) --warmup X (steps, or a
  fraction below 1) --schedule constant|linear|cosine --weight-decay X --max-grad-norm X --seed N --eval-every N
  --checkpoint-every N --validation X (fraction or count) --prompt-loss --format F --map FIELD=COLUMN
  --beta X (DPO's beta; for grpo the KL penalty's) --adapter DIR|ZIP (continue training that adapter)
grpo: --reward-model DIR | --reward-js FILE | --reward-onnx FILE, --group-size N --max-completion N --temperature X`;

/** The defaults for the method and model, with every flag given on top. */
function settingsFrom(values: Record<string, unknown>, method: Method, parameters: number): TrainSettings {
  const s = defaultSettings(method, parameters, Boolean(values.full));
  const numbers: [string, keyof TrainSettings][] = [
    ['epochs', 'epochs'],
    ['lr', 'lr'],
    ['lora-r', 'loraR'],
    ['lora-alpha', 'loraAlpha'],
    ['lora-dropout', 'loraDropout'],
    ['batch-size', 'batchSize'],
    ['grad-accum', 'gradAccum'],
    ['seq-len', 'seqLen'],
    ['warmup', 'warmup'],
    ['weight-decay', 'weightDecay'],
    ['max-grad-norm', 'maxGradNorm'],
    ['seed', 'seed'],
    ['eval-every', 'evalEvery'],
    ['checkpoint-every', 'checkpointEvery'],
    // TRL names both betas `beta`: DPO's temperature, and GRPO's KL weight.
    ['beta', method === 'grpo' ? 'klBeta' : 'dpoBeta'],
    ['group-size', 'groupSize'],
    ['max-completion', 'maxCompletion'],
    ['temperature', 'temperature'],
  ];
  const out: Record<string, unknown> = { ...s };
  for (const [flag, key] of numbers) {
    const n = numberFlag(values, flag);
    if (n !== undefined) out[key] = n;
  }
  const maxSteps = numberFlag(values, 'max-steps');
  if (maxSteps !== undefined) out.maxSteps = maxSteps;
  if (values.schedule !== undefined) out.schedule = values.schedule as Schedule;
  if (values.targets !== undefined)
    out.targets = String(values.targets)
      .split(',')
      .map((t) => t.trim()) as Projection[];
  if (values.rslora) out.rslora = true;
  if (values.recompute) out.recompute = true;
  return out as unknown as TrainSettings;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m ${Math.round(seconds % 60)}s` : `${Math.round(seconds)}s`;
}

/** One line, redrawn: where the run is, how fast, how long is left. */
function progressLine(m: StepMetrics, started: number): string {
  const width = 24;
  const done = Math.round((width * m.step) / m.totalSteps);
  const elapsed = (performance.now() - started) / 1000;
  const eta = (elapsed / m.step) * (m.totalSteps - m.step);
  return (
    `\rstep ${m.step}/${m.totalSteps} [${'#'.repeat(done)}${'.'.repeat(width - done)}] loss ${m.loss.toFixed(4)} ` +
    `lr ${m.lr.toExponential(1)} | ${Math.round(m.tokensPerSecond)} tok/s | ${formatDuration(eta)} left   `
  );
}

/**
 * The adapter `--adapter` continues: loaded for the method (a reward model's for rm), its LoRA shape taken into the
 * settings; flags that ask for another shape are refused rather than ignored.
 */
async function continuedAdapter(
  values: Record<string, unknown>,
  settings: TrainSettings,
  config: ModelConfig,
): Promise<LoadedAdapter> {
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
    if (values[flag] !== undefined && JSON.stringify(settings[key]) !== JSON.stringify(shape[key])) {
      throw new Error(
        `--${flag} asks for ${settings[key]}, but the adapter ${label} has ${shape[key]}: leave it out to continue it`,
      );
    }
  }
  Object.assign(settings, shape);
  return adapter;
}

function describeValidation(v: Validation): string {
  const parts = [
    v.loss !== null && `validation loss ${v.loss.toFixed(4)}`,
    v.accuracy !== null && `${(100 * v.accuracy).toFixed(1)}% of held-out pairs ranked right`,
    v.reward !== null && `mean reward on held-out prompts ${v.reward.toFixed(4)}`,
  ];
  return parts.filter(Boolean).join(', ');
}

/**
 * `hone train`: the studio's training in Node: the dataset read and rendered as in the browser, the engine on
 * Dawn, progress on stderr, metrics in DIR/metrics.jsonl, a resumable checkpoint in DIR/checkpoint, and the
 * result in DIR: a PEFT adapter, or with --full the model itself.
 */
export async function train(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      method: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'boolean', default: false },
      format: { type: 'string' },
      map: { type: 'string', multiple: true, default: [] },
      validation: { type: 'string', default: '0.1' },
      'prompt-loss': { type: 'boolean', default: false },
      'max-steps': { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      'lora-r': { type: 'string' },
      'lora-alpha': { type: 'string' },
      'lora-dropout': { type: 'string' },
      targets: { type: 'string' },
      rslora: { type: 'boolean' },
      recompute: { type: 'boolean' },
      full: { type: 'boolean' },
      'batch-size': { type: 'string' },
      'grad-accum': { type: 'string' },
      'seq-len': { type: 'string' },
      warmup: { type: 'string' },
      schedule: { type: 'string' },
      'weight-decay': { type: 'string' },
      'max-grad-norm': { type: 'string' },
      seed: { type: 'string' },
      'eval-every': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      beta: { type: 'string' },
      'group-size': { type: 'string' },
      'max-completion': { type: 'string' },
      temperature: { type: 'string' },
      adapter: { type: 'string' },
      'reward-model': { type: 'string' },
      'reward-js': { type: 'string' },
      'reward-onnx': { type: 'string' },
    },
    strict: true,
  });
  const { model, data, out } = values;
  const method = values.method as Method | undefined;
  if (!model || !data || !method || !out) throw new Error(`usage: ${TRAIN_USAGE}\n${SETTINGS_HELP}`);
  if (!(method in METHODS))
    throw new Error(`--method must be one of ${Object.keys(METHODS).join(', ')}, not '${method}'`);
  if (values.schedule !== undefined && !SCHEDULES.includes(values.schedule as Schedule)) {
    throw new Error(`--schedule must be one of ${SCHEDULES.join(', ')}, not '${values.schedule}'`);
  }
  const format = values.format as DatasetFormat | undefined;
  if (format !== undefined && !DATASET_FORMATS.includes(format)) {
    throw new Error(`--format must be one of ${DATASET_FORMATS.join(', ')}, not '${format}'`);
  }
  const validation = numberFlag(values, 'validation') ?? 0.1;

  const source = modelSource(model);
  const checkpoint = await loadCheckpoint(source.read, source.label);
  const config = checkpoint.config;
  const settings = settingsFrom(values, method, parameterCount(config));
  const initial = values.adapter ? await continuedAdapter(values, settings, config) : undefined;
  const tokenizer = await loadTokenizer(source.read, source.label);

  const files = await datasetFiles(data.split(','));
  let prepared: Awaited<ReturnType<typeof prepareRun>>;
  try {
    prepared = await prepareRun(
      files,
      { format, mapping: parseMapping(values.map), validation, trainOnPrompt: values['prompt-loss'] },
      tokenizer,
      config,
      settings,
    );
  } catch (error) {
    if (error instanceof DatasetError) throw new Error(error.message);
    throw error;
  }
  const { data: sequences, skipped } = prepared;
  const unit = sequences.kind;
  if (prepared.problems.length > 0) {
    const reasons = prepared.problems.map((p) => `  - ${p}`).join('\n');
    process.stderr.write(`hone train: these settings cannot train:\n${reasons}\n`);
    return 2;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(
    `${prepared.format} data: ${prepared.records} records (${skipped} skipped${skipped > 0 ? '; see hone inspect' : ''}), ` +
      `${sequences.train.length} training and ${sequences.validation.length} validation ${unit}` +
      (sequences.dropped > 0 ? `; ${sequences.dropped} cut before their answers and left out` : ''),
  );

  const rewardBuilder = await readRewardFlags(values, method, config, tokenizer);
  await mkdir(out, { recursive: true });
  const checkpointDir = join(out, 'checkpoint');
  const metricsPath = join(out, 'metrics.jsonl');
  const { device, summary } = await acquireNodeGpu();
  try {
    const choices = kernelChoicesFor(summary);
    const kernels = new EngineKernels(device, choices, tuningStoreFor(diskCache(defaultCacheDir()), summary, choices));
    const weights = await GpuWeights.upload(device, config, (key) => checkpoint.readFloat32(key), {
      halfMatrices: !settings.full && kernels.choices.halfWeights,
    });
    const reward =
      rewardBuilder && sequences.kind === 'prompts'
        ? await rewardBuilder(
            { device, kernels, weights },
            {
              rows: settings.batchSize * settings.groupSize,
              seq: rlSequenceLength(sequences, settings.seqLen, settings.maxCompletion),
            },
            tokenizer.padTokenId,
          )
        : undefined;
    const trainer = await createTrainer(
      { device, kernels, weights },
      { settings, data: sequences, tokenizer, reward, initial },
    ).catch((error) => {
      reward?.destroy();
      throw error;
    });
    if (values.resume) {
      if (!(await exists(join(checkpointDir, CHECKPOINT_FILES[0]))))
        throw new Error(`--resume: ${checkpointDir} holds no checkpoint`);
      trainer.restore(
        parseCheckpoint(
          await readFile(join(checkpointDir, 'trainer.json'), 'utf8'),
          new Uint8Array(await readFile(join(checkpointDir, 'optimizer.safetensors'))),
          checkpointDir,
        ),
      );
      log(`resuming at step ${trainer.stepsCompleted} of ${trainer.totalSteps}`);
    } else {
      await rm(metricsPath, { force: true });
    }
    log(`training on ${summary.description || summary.architecture}: ${trainer.totalSteps} steps`);

    let stopRequested = false;
    const onInterrupt = () => {
      stopRequested = true;
      log('\nstopping after this step (Ctrl-C again to quit at once)');
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', onInterrupt);
    const started = performance.now();
    const record = (entry: object) => appendFile(metricsPath, `${JSON.stringify(entry)}\n`);
    let lastValidation: Validation | null = null;
    let pending = Promise.resolve();
    const outcome = await runTraining(trainer, {
      onStep: (m) => {
        process.stderr.write(progressLine(m, started));
        pending = pending.then(() => record({ type: 'train', ...m }));
      },
      onEval: (step, validation) => {
        lastValidation = validation;
        pending = pending.then(() => record(evalRecord(step, validation)));
      },
      onCheckpoint: async (c) => {
        await mkdir(checkpointDir, { recursive: true });
        for (const [name, content] of Object.entries(serializeCheckpoint(c))) {
          await writeFile(join(checkpointDir, name), content);
        }
      },
      shouldStop: () => stopRequested,
    });
    process.off('SIGINT', onInterrupt);
    await pending;
    process.stderr.write('\n');
    if (lastValidation) log(describeValidation(lastValidation));
    if (outcome === 'stopped') {
      log(`stopped at step ${trainer.stepsCompleted}; continue with the same command and --resume`);
      trainer.destroy();
      return 130;
    }

    if (trainer.lora) {
      // The adapter folder as the studio exports it: PEFT's two files, the model card, the metrics.
      const records = (await readFile(metricsPath, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line));
      const folder = adapterFolderFiles({
        baseModel: baseModelId(model),
        settings,
        modules: await trainer.lora.readParams(device),
        scoreHead: await trainer.head?.readWeight(),
        data: {
          files: files.map((f) => f.name),
          format: prepared.format,
          train: sequences.train.length,
          validation: sequences.validation.length,
          unit,
        },
        metrics: records,
      });
      for (const [name, content] of Object.entries(folder)) await writeFile(join(out, name), content);
    } else {
      // Every weight trained: the model itself, kept float32, with the base's config and tokenizer files.
      const trained = (key: string) => weights.read(device, key, elementCount(checkpoint, key));
      const folder = await modelFolderFiles(checkpoint, source.read, trained, 'F32');
      for (const [name, blob] of folder) await writeFile(join(out, name), new Uint8Array(await blob.arrayBuffer()));
    }
    trainer.destroy();
    weights.destroy();
    log(`wrote ${trainer.lora ? 'the adapter' : 'the model'} and metrics.jsonl to ${out}`);
    return 0;
  } finally {
    device.destroy();
  }
}
