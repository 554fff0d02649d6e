import { join } from 'node:path';
import { DATASET_FORMATS, type DatasetFormat } from '../../core/dataset/formats';
import { DatasetError } from '../../core/dataset/load-dataset';
import type { DataChoice } from '../../core/training/prepare';
import { DEFAULT_DATA, METHODS, type Method, type TrainSettings } from '../../core/training/settings';
import { EngineSession } from '../../workers/engine/session';
import { RunRefusedError, type TrainRequest } from '../../workers/engine/train/build-run';
import { CHANGEABLE_ON_RESUME, unresumableChanges } from '../../workers/engine/train/trainer';
import { type Command, type FlagValues, numberFlag, parseMapping } from '../command';
import { defaultCacheDir, diskCache } from '../disk-cache';
import { diskRunStore } from '../disk-run-store';
import { datasetFiles } from '../folder';
import { BASE_FLAG, basePrecisionFlag, modelSource } from '../model-source';
import { acquireNodeGpu } from '../node-gpu';
import { spawnNodeRuleWorker } from '../rule-worker';
import { continuedAdapter, rewardChoice } from '../run-inputs';
import { flagSettings, LENGTH_FLAGS, settingsFlags, settingsFrom } from '../settings-flags';
import { Progress } from '../train-progress';

const FLAGS = {
  model: { value: 'M', help: 'the model: hone-tiny, a folder, or hub:ORG/NAME[@REVISION]' },
  data: { value: 'FILE[,FILE...]', help: 'the dataset files (JSONL, JSON, CSV, TSV, Parquet, text)' },
  method: { value: 'METHOD', help: `how to train: ${Object.keys(METHODS).join(', ')}` },
  out: { value: 'DIR', help: 'where the adapter (or model), metrics.jsonl and the checkpoint go' },
  resume: {
    help: `continue the run saved in DIR/checkpoint with its own model, data and settings; only ${LENGTH_FLAGS.map((f) => `--${f}`).join(', ')} may change`,
  },
  format: { value: 'F', help: `the dataset's format, when not the detected one: ${DATASET_FORMATS.join(', ')}` },
  map: { value: 'FIELD=COLUMN', help: "a format's field read from another column", multiple: true },
  validation: {
    value: 'X',
    help: 'records held out for validation: a fraction below 1, or a count',
    default: DEFAULT_DATA.validation,
  },
  'split-seed': { value: 'N', help: 'seeds which records are held out', default: DEFAULT_DATA.splitSeed },
  'prompt-loss': { help: 'train on the prompt tokens too, not only the answers' },
  adapter: { value: 'DIR|ZIP', help: 'continue training this PEFT adapter, in its own LoRA shape' },
  ...BASE_FLAG,
  ...settingsFlags(),
  'reward-model': { value: 'DIR', help: 'grpo: the reward, a reward model trained with --method rm' },
  'reward-js': { value: 'FILE', help: 'grpo: the reward, a JavaScript rule (prompt, completion) => number' },
  'reward-onnx': {
    value: 'FILE',
    help: "grpo: the reward, an ONNX sequence-classification model (its folder's tokenizer, else the model's)",
  },
} as const;

export const train: Command = {
  usage: 'hone train --model M --data FILE[,FILE...] --method METHOD --out DIR [settings] | --out DIR --resume',
  summary:
    "Fine-tunes as the studio's Train step does, on the same run code: a PEFT adapter (or with --full the model), " +
    "metrics.jsonl and a resumable checkpoint in DIR. Defaults are the studio's, for the method and the model's size.",
  flags: FLAGS,
  async run({ values }) {
    const out = values.out as string | undefined;
    if (!out) throw new Error(`usage: ${train.usage} (hone train --help lists the settings)`);
    const session = new EngineSession({
      acquire: () => acquireNodeGpu(),
      runs: diskRunStore(join(out, 'checkpoint')),
      tuning: diskCache(defaultCacheDir()),
      spawnRuleWorker: spawnNodeRuleWorker,
    });
    const progress = new Progress(out);
    try {
      await (values.resume ? resume(session, values, out, progress) : begin(session, values, progress));
      return await progress.finish(session);
    } catch (error) {
      if (error instanceof RunRefusedError) {
        process.stderr.write(
          `hone train: these settings cannot train:\n${error.problems.map((p) => `  - ${p}`).join('\n')}\n`,
        );
        return 2;
      }
      if (error instanceof DatasetError) throw new Error(error.message);
      throw error;
    } finally {
      session.close();
    }
  },
};

/** A new run from the flags: the request the Train step would send. */
async function begin(session: EngineSession, values: FlagValues, progress: Progress): Promise<void> {
  const { model, data } = values as { model?: string; data?: string };
  const method = values.method as Method | undefined;
  if (!model || !data || !method) throw new Error(`usage: ${train.usage} (hone train --help lists the settings)`);
  if (!(method in METHODS))
    throw new Error(`--method must be one of ${Object.keys(METHODS).join(', ')}, not '${method}'`);
  const format = values.format as DatasetFormat | undefined;
  if (format !== undefined && !DATASET_FORMATS.includes(format)) {
    throw new Error(`--format must be one of ${DATASET_FORMATS.join(', ')}, not '${format}'`);
  }
  const files = await datasetFiles(data.split(','));
  const reward = await rewardChoice(values, method);
  const source = modelSource(model);
  const loaded = await session.loadFrom(source.read, source.label, basePrecisionFlag(values));
  const settings = settingsFrom(values, method, loaded.config);
  const initialAdapter = values.adapter ? await continuedAdapter(values, settings, loaded.config) : undefined;
  const choice: DataChoice = {
    format,
    mapping: parseMapping(values.map as string[]),
    validation: numberFlag(values, 'validation') ?? DEFAULT_DATA.validation,
    splitSeed: numberFlag(values, 'split-seed') ?? DEFAULT_DATA.splitSeed,
    trainOnPrompt: Boolean(values['prompt-loss']),
  };
  const request: TrainRequest = { model: source.label, settings, data: choice, reward, initialAdapter };
  await session.startTraining(request, files, progress.listen(session));
}

/** The run saved in DIR/checkpoint, continued; the flags may make it longer, nothing else. */
async function resume(session: EngineSession, values: FlagValues, out: string, progress: Progress): Promise<void> {
  const saved = await session.savedRunRequest();
  if (!saved) throw new Error(`--resume: ${join(out, 'checkpoint')} holds no run to continue`);
  const { request } = saved;
  if (values.model !== undefined && values.model !== request.model) {
    throw new Error(`--resume: the run in ${out} trains ${request.model}, not ${values.model}`);
  }
  const given = flagSettings(values, request.settings.method);
  const changed = unresumableChanges(request.settings, given);
  if (changed.length > 0) {
    const fields = changed.map((key) => `${key} ${given[key]} (the run has ${request.settings[key]})`).join(', ');
    throw new Error(`--resume continues the run as it began; ${fields} would change it: start a new run instead`);
  }
  const longer = Object.fromEntries(
    Object.entries(given).filter(([key]) => CHANGEABLE_ON_RESUME.includes(key as keyof TrainSettings)),
  ) as Partial<TrainSettings>;
  if (saved.ended && longer.maxSteps === undefined && longer.epochs === undefined) {
    throw new Error(`--resume: the run in ${out} has ended; give --max-steps or --epochs to train it longer`);
  }
  const base = basePrecisionFlag(values);
  if (base !== undefined && base !== (request.base ?? 'f16')) {
    throw new Error(`--resume: the run in ${out} trains over a ${request.base ?? 'f16'} base, not ${base}`);
  }
  const source = modelSource(request.model);
  await session.loadFrom(source.read, source.label, request.base ?? 'f16');
  await session.resumeSavedRun(progress.listen(session), longer);
}
