import { describe, expect, it } from 'vitest';
import { setupTestGpu } from '../../tests/helpers/gpu';
import { GpuMemoryTracker } from './gpu-memory';

const gpu = setupTestGpu();

describe('GpuMemoryTracker', () => {
  it('gives the peak of live bytes and who held them then, counting a buffer destroyed twice once', async () => {
    const { device } = gpu();
    const memory = new GpuMemoryTracker(device);
    const create = (size: number) => device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
    const weights = await memory.as('weights', () => create(4096));
    const scratch = await memory.as('scratch', async () => {
      await device.queue.onSubmittedWorkDone(); // still attributed after an await inside
      return create(1024);
    });
    scratch.destroy();
    scratch.destroy();
    const later = await memory.as('later', () => create(512));
    expect(memory.report()).toEqual({ peakBytes: 5120, atPeak: { weights: 4096, scratch: 1024 } });
    const bigger = await memory.as('later', () => create(2048));
    expect(memory.report()).toEqual({ peakBytes: 6656, atPeak: { weights: 4096, later: 2560 } });
    memory.stop();
    create(1 << 20).destroy();
    expect(memory.report().peakBytes).toBe(6656);
    for (const b of [weights, later, bigger]) b.destroy();
  });
});
