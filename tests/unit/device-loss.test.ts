/**
 * A GPU device lost in the middle of a run (a driver reset, a tab in the background too long; here the device is
 * destroyed): the run stops with a clear message and its last checkpoint kept, and once the model is on a new
 * device, Resume continues from that checkpoint.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { acquireNodeGpu } from '../../cli/node-gpu';
import type { Gpu } from '../../workers/engine/gpu/device';
import { EngineSession } from '../../workers/engine/session';
import type { TrainEvent } from '../../workers/engine/train/training-session';
import { folderRunStore } from '../../workers/storage/run-store';
import { capitalsJsonl } from '../helpers/datasets';
import { memoryRunFolders } from '../helpers/memory-run-folders';
import { tinyRunSettings } from '../helpers/trainer-runs';

const gpus: Gpu[] = [];
afterAll(() => {
  for (const gpu of gpus) gpu.device.destroy();
});

describe('a lost GPU device', () => {
  it('stops the run at its last checkpoint (or before its first) with a clear message; it resumes on a new device', async () => {
    const session = new EngineSession({
      acquire: async () => {
        const gpu = await acquireNodeGpu();
        gpus.push(gpu);
        return gpu;
      },
      runs: folderRunStore(memoryRunFolders(), 5),
    });
    const model = folderReader('public/models/hone-tiny');
    await session.loadFrom(model, 'hone-tiny');
    const data = capitalsJsonl([
      ['Capital of France?', 'Paris.'],
      ['Capital of Peru?', 'Lima.'],
    ]);
    const files = [{ name: 'capitals.jsonl', blob: new Blob([data]) }];
    const settings = tinyRunSettings('sft', {
      maxSteps: 8,
      seqLen: 48,
      batchSize: 2,
      gradAccum: 1,
      checkpointEvery: 2,
    });
    const request = { model: 'hone-tiny', settings, data: { validation: 0, trainOnPrompt: false } };
    const events: TrainEvent[] = [];
    await session.startTraining(request, files, (event) => {
      events.push(event);
      if (event.type === 'metric' && event.metric.type === 'train' && event.metric.step === 3) {
        gpus[0].device.destroy();
      }
    });
    const failed = events.find((e) => e.type === 'failed');
    expect(failed).toBeDefined();
    expect(failed?.type === 'failed' && failed.message).toMatch(
      /^The GPU device was lost \(.+\) at step \d: the run is kept at its last checkpoint, step 2; load the model again to resume it\.$/,
    );
    expect((await session.savedRun())?.step).toBe(2);
    await expect(
      session.generate(
        {
          prompt: { ids: [1] },
          adapter: 'none',
          sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
          maxNewTokens: 1,
          seed: 0,
        },
        () => {},
      ),
    ).rejects.toThrow(/The GPU device was lost/);

    // A new device: the model again (at the base precision the run trained over), then the run from step 2 to its end.
    await session.loadFrom(model, 'hone-tiny', 'q4');
    await expect(session.resumeSavedRun(() => {})).rejects.toThrow(
      'This run trained over a 16-bit base, and the model is loaded at 4-bit: load it at 16-bit in the Model step to resume the run.',
    );
    await session.loadFrom(model, 'hone-tiny');
    const resumed: TrainEvent[] = [];
    await session.resumeSavedRun((event) => resumed.push(event));
    expect(resumed.at(-1)).toMatchObject({ type: 'finished', step: 8 });
    const trained = resumed.flatMap((e) => (e.type === 'metric' && e.metric.type === 'train' ? [e.metric.step] : []));
    expect(trained).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(gpus).toHaveLength(2);

    // Lost before its first checkpoint, a run starts again from its kept request and data.
    const early: TrainEvent[] = [];
    await session.startTraining(request, files, (event) => {
      early.push(event);
      if (event.type === 'metric' && event.metric.type === 'train' && event.metric.step === 1) {
        gpus[1].device.destroy();
      }
    });
    const lost = early.find((e) => e.type === 'failed');
    expect(lost?.type === 'failed' && lost.message).toMatch(/it had no checkpoint yet; load the model again/);
    expect((await session.savedRun())?.step).toBe(0);
    await session.loadFrom(model, 'hone-tiny');
    const again: TrainEvent[] = [];
    await session.resumeSavedRun((event) => again.push(event));
    expect(again.at(-1)).toMatchObject({ type: 'finished', step: 8 });
    expect(again.find((e) => e.type === 'prepared')).toMatchObject({ step: 0 });
    session.close();
  });
});
