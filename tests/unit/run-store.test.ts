/**
 * The run store's layout, shared by the studio (OPFS) and `hone train` (a folder): tested on the disk folder, and on
 * folders in memory for keeping only the newest runs.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskRunStore } from '../../cli/disk-run-store';
import { defaultSettings } from '../../core/training/settings';
import type { MetricRecord, TrainRequest } from '../../workers/engine/train/training-session';
import { KEPT_ADAPTERS } from '../../workers/engine/train/training-session';
import { folderRunStore } from '../../workers/storage/run-store';
import { memoryRunFolders } from '../helpers/memory-run-folders';
import { tempDir } from '../helpers/model-folder';

const request: TrainRequest = {
  model: 'hone-tiny',
  settings: { ...defaultSettings('grpo', 1e6), maxSteps: 4 },
  data: { validation: 0, trainOnPrompt: false },
  reward: { kind: 'onnx', name: 'ones', files: [{ path: 'ones/model.onnx', file: new Blob(['onnx bytes']) }] },
};
const files = [{ name: 'prompts.jsonl', blob: new Blob(['{"prompt":"Hi"}\n']) }];
const metric = (step: number): MetricRecord => ({
  type: 'train',
  step,
  totalSteps: 4,
  epoch: step / 4,
  loss: 1 / step,
  lr: 0.01,
  gradNorm: 1,
  tokensPerSecond: 10,
});
const checkpoint = (step: number) => ({
  'trainer.json': JSON.stringify({ step }),
  'optimizer.safetensors': Uint8Array.of(step, 1, 2),
});
const adapter = (step: number) => ({ step, params: Float32Array.of(step, step + 0.5) });

describe('the run store', () => {
  it('keeps a run in a folder: request, data, checkpoint, metrics and adapters; resumable until it ends', async () => {
    const dir = join(await tempDir('hone-runs-'), 'checkpoint');
    const store = diskRunStore(dir);
    expect(await store.load()).toBeNull();
    await store.begin(request, files);
    for (let step = 1; step <= KEPT_ADAPTERS + 2; step++) {
      await store.saveCheckpoint(checkpoint(step), [metric(step)], adapter(step));
    }
    const saved = await store.load();
    expect(saved?.ended).toBe(false);
    expect(saved?.request.settings).toEqual(request.settings);
    expect(await saved?.files[0].blob.text()).toBe('{"prompt":"Hi"}\n');
    const reward = saved?.request.reward as { files: { path: string; file: Blob }[] };
    expect(reward.files[0].path).toBe('ones/model.onnx');
    expect(await reward.files[0].file.text()).toBe('onnx bytes');
    expect(saved?.checkpoint?.json).toBe(JSON.stringify({ step: KEPT_ADAPTERS + 2 }));
    expect([...(saved?.checkpoint?.tensors ?? [])]).toEqual([KEPT_ADAPTERS + 2, 1, 2]);

    const [listed] = await store.runs();
    // The oldest adapters go past KEPT_ADAPTERS.
    expect(listed.steps).toEqual(Array.from({ length: KEPT_ADAPTERS }, (_, i) => i + 3));
    expect(await store.loadAdapter(listed.id, 5)).toEqual(Float32Array.of(5, 5.5));
    expect(await store.loadAdapter(listed.id, 1)).toBeNull();
    expect(listed.fingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(listed.started).toBeGreaterThan(Date.now() - 60_000);

    await store.end([metric(1), metric(2)]);
    expect((await store.load())?.ended).toBe(true);
    expect((await store.runs())[0].metrics.map((m) => m.step)).toEqual([1, 2]);
    // Trained longer: the settings are the run's now, and it can be resumed again.
    await store.reopen({ ...request.settings, maxSteps: 8 });
    const reopened = await store.load();
    expect(reopened?.ended).toBe(false);
    expect(reopened?.request.settings.maxSteps).toBe(8);
    // Nothing half-written is left beside the files.
    expect((await readdir(dir)).filter((name) => name.endsWith('.partial'))).toEqual([]);

    // A new run replaces it; cut before its first checkpoint, it starts again from its request and data.
    await store.begin({ ...request, reward: undefined }, files);
    const fresh = await store.load();
    expect(fresh?.checkpoint).toBeNull();
    expect(fresh?.request.reward).toBeUndefined();
    expect(await fresh?.files[0].blob.text()).toBe('{"prompt":"Hi"}\n');
    expect((await store.runs())[0].steps).toEqual([]);
  });

  it('keeps the newest runs, the current one last', async () => {
    const store = folderRunStore(memoryRunFolders(), 2);
    for (const maxSteps of [1, 2, 3]) {
      await store.begin({ ...request, settings: { ...request.settings, maxSteps } }, files);
      await store.saveCheckpoint(checkpoint(maxSteps), [metric(maxSteps)], adapter(maxSteps));
    }
    const runs = await store.runs();
    expect(runs.map((r) => r.settings.maxSteps)).toEqual([3, 2]);
    expect((await store.keptRun(runs[1].id))?.steps).toEqual([2]);
    expect(await store.keptRun('000')).toBeNull();
    await store.clear();
    expect((await store.runs()).map((r) => r.settings.maxSteps)).toEqual([2]);
  });

  it('leaves out a run whose record is damaged, and a metrics line cut short', async () => {
    const folders = memoryRunFolders();
    const store = folderRunStore(folders, 5);
    for (const maxSteps of [1, 2]) {
      await store.begin({ ...request, settings: { ...request.settings, maxSteps } }, files);
      await store.saveCheckpoint(checkpoint(maxSteps), [metric(1), metric(2)], adapter(maxSteps));
    }
    const [newer, older] = (await folders.ids()).reverse();
    await (await folders.open(older))?.write('run.json', '{"model": "hone-ti');
    const damaged = await folders.open(newer);
    const metrics = await (await damaged?.read('metrics.jsonl'))?.text();
    await damaged?.write('metrics.jsonl', `${metrics}{"type": "train", "st`);
    const runs = await store.runs();
    expect(runs.map((r) => r.id)).toEqual([newer]);
    expect(runs[0].metrics.map((m) => m.step)).toEqual([1, 2]);
    expect(await store.keptRun(older)).toBeNull();
  });
});
