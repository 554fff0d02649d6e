import { describe, expect, it } from 'vitest';
import { setupTestGpu } from '../../../tests/helpers/gpu';
import { readFloat32, uploadBuffer } from './buffers';
import { Kernel } from './kernel';
import type { Op } from './ops';
import { profileOps } from './profile';

const gpu = setupTestGpu();

/** A kernel applying `expression` of v to each of a buffer's 4 values. */
const elementwise = (device: GPUDevice, expression: string, label: string) =>
  new Kernel(
    device,
    `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(4) fn main(@builtin(local_invocation_index) i: u32) { let v = x[i]; x[i] = ${expression}; }`,
    label,
  );

describe('profiling a plan kernel by kernel', () => {
  it('times every dispatch by label across submits, and runs copies and clears where the plan has them', async () => {
    const { device } = gpu();
    const x = uploadBuffer(device, Float32Array.of(1, 2, 3, 4));
    const y = uploadBuffer(device, new Float32Array(4));
    const addOne = elementwise(device, 'v + 1.0', 'add_one').op([x], [], [1, 1, 1]);
    const half = elementwise(device, 'v * 0.5', 'half').op([x], [], [1, 1, 1]);
    // Past the 2048 dispatches one submit times; a copy of x midway, a clear of x near the end.
    const ops: Op[] = [];
    const expected = { x: [1, 2, 3, 4], y: [0, 0, 0, 0] };
    for (let i = 0; i < 2100; i++) {
      const halving = i % 300 === 0;
      ops.push(halving ? half : addOne);
      expected.x = expected.x.map((v) => (halving ? v * 0.5 : v + 1));
      if (i === 1000) {
        ops.push({ kind: 'copy', source: x, target: y, byteLength: 16 });
        expected.y = [...expected.x];
      }
      if (i === 2060) {
        ops.push({ kind: 'clear', buffer: x });
        expected.x = [0, 0, 0, 0];
      }
    }
    const times = await profileOps(device, ops);
    expect(Object.fromEntries(times.map((t) => [t.label, t.dispatches]))).toEqual({ add_one: 2093, half: 7 });
    expect(times.every((t) => t.milliseconds > 0)).toBe(true);
    expect(times[0].milliseconds).toBeGreaterThanOrEqual(times[1].milliseconds);
    expect(Array.from(await readFloat32(device, x))).toEqual(expected.x);
    expect(Array.from(await readFloat32(device, y))).toEqual(expected.y);
  });

  it('says what it needs on a device without timestamp queries', async () => {
    const plain = { features: new Set<string>() } as unknown as GPUDevice;
    await expect(profileOps(plain, [])).rejects.toThrow(/no timestamp-query feature/);
  });
});
