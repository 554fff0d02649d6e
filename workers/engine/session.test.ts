/**
 * The engine worker's session on hone-tiny, with GPUs' way of holding weights (fp16 matrices) forced on whatever
 * adapter runs the tests: the loaded model is never trained, so a full-parameter run trains a copy of its own,
 * and Compare's base side, time estimates and later runs all still read the model as loaded.
 */
import { readFile } from 'node:fs/promises';
import { unzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireNodeGpu } from '../../cli/node-gpu';
import { weightBytes } from '../../core/model-memory';
import { parseSafetensors } from '../../core/safetensors';
import type { TrainSettings } from '../../core/training/settings';
import { capitalsJsonl } from '../../tests/helpers/datasets';
import { tinyRunSettings } from '../../tests/helpers/trainer-runs';
import type { Gpu } from './gpu/device';
import { kernelChoicesFor } from './model/kernels';
import type { ModelSource } from './model-loader';
import { EngineSession } from './session';
import type { TrainEvent } from './train/training-session';

const FOLDER = 'public/models/hone-tiny';

async function honeTiny(): Promise<ModelSource> {
  const paths = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
  const files = await Promise.all(
    paths.map(async (path) => ({ path, file: new Blob([await readFile(`${FOLDER}/${path}`)]) })),
  );
  return { kind: 'files', name: 'hone-tiny', files };
}

const dataset = [
  {
    name: 'capitals.jsonl',
    blob: new Blob([
      capitalsJsonl([
        ['What is the capital of France?', 'Paris.'],
        ['What is the capital of Peru?', 'Lima.'],
        ['What is the capital of Japan?', 'Tokyo.'],
        ['What is the capital of Kenya?', 'Nairobi.'],
      ]),
    ]),
  },
];

let gpu: Gpu | undefined;
const session = new EngineSession({
  acquire: async () => {
    gpu = await acquireNodeGpu();
    return gpu;
  },
  choose: (adapter) => ({ ...kernelChoicesFor(adapter), halfWeights: true }),
});

afterAll(() => gpu?.device.destroy());

/** A run to its end: its training losses, and how it ended. */
async function train(settings: TrainSettings): Promise<{ losses: number[]; end: TrainEvent['type'] }> {
  const losses: number[] = [];
  let end: TrainEvent['type'] = 'prepared';
  const request = { model: 'hone-tiny', settings, data: { validation: 0, trainOnPrompt: false } };
  await session.startTraining(request, dataset, (event) => {
    if (event.type === 'metric' && event.metric.type === 'train') losses.push(event.metric.loss);
    else if (event.type !== 'metric') end = event.type;
  });
  return { losses, end };
}

/** A greedy answer from the base model ('none') or the run's ('run'). */
async function answer(adapter: 'none' | 'run'): Promise<string> {
  const sampling = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 };
  const messages = [{ role: 'user', content: 'What is the capital of France?' }];
  const result = await session.generate(
    { prompt: { messages }, adapter, sampling, maxNewTokens: 8, seed: 1 },
    () => {},
  );
  return result.text;
}

describe('EngineSession', () => {
  it('holds the matrices at fp16, and a full-parameter run trains a copy, leaving the base as loaded', async () => {
    const loaded = await session.load(await honeTiny(), { baseUrl: 'http://127.0.0.1:9' }, () => {});
    expect(loaded.halfMatrices).toBe(true);
    expect(loaded.gpuBytes).toBe(weightBytes(loaded.config, { halfMatrices: true }));
    expect(loaded.gpuBytes).toBeLessThan(0.6 * weightBytes(loaded.config, {}));

    const base = await answer('none');
    const lora = tinyRunSettings('sft', { maxSteps: 2, seqLen: 48 });
    const before = await train(lora);
    expect(before.end).toBe('finished');

    const full = tinyRunSettings('sft', { full: true, maxSteps: 6, lr: 1e-3, seqLen: 48 });
    const request = { model: 'hone-tiny', settings: full, data: { validation: 0, trainOnPrompt: false } };
    const timing = await session.timeRun(request, dataset);
    expect(timing.totalSteps).toBe(6);
    expect(await answer('none')).toBe(base);

    const fullRun = await train(full);
    expect(fullRun.end).toBe('finished');
    expect(fullRun.losses.at(-1)).toBeLessThan(fullRun.losses[0]);
    expect(await answer('none')).toBe(base);
    expect(await answer('run')).not.toBe(base);

    // The merged export of a full run is its trained fp32 weights, every tensor of the model.
    const merged = await session.exports.mergedZip('run');
    const unzipped = unzipSync(new Uint8Array(await merged.zip.arrayBuffer()));
    const name = merged.fileName.replace(/\.zip$/, '');
    const trained = parseSafetensors(unzipped[`${name}/model.safetensors`], 'the export');
    const original = parseSafetensors(new Uint8Array(await readFile(`${FOLDER}/model.safetensors`)), 'hone-tiny');
    expect([...trained.tensors.keys()].sort()).toEqual([...original.tensors.keys()].sort());
    const key = 'model.layers.0.mlp.down_proj.weight';
    expect(trained.tensors.get(key)?.dtype).toBe('F32');
    expect(trained.readFloat32(key)).not.toEqual(original.readFloat32(key));

    // A LoRA run after it starts from the base model again: its first loss is the first run's.
    const after = await train(lora);
    expect(after.losses[0]).toBeCloseTo(before.losses[0], 6);
  });
});
