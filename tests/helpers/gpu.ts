import { afterAll, beforeAll } from 'vitest';
import { acquireNodeGpu } from '../../cli/node-gpu';
import { readFloat32 } from '../../workers/engine/gpu/buffers';
import type { Gpu } from '../../workers/engine/gpu/device';
import { type Op, submitOps } from '../../workers/engine/gpu/ops';

/**
 * A real WebGPU device for the tests of one file (Dawn in Node on whatever Vulkan driver the machine has:
 * SwiftShader by default, lavapipe when present, a GPU where there is one). Call at the top of a test file;
 * the returned function gives the device inside tests. The device is destroyed after the file so the
 * process can exit.
 */
export function setupTestGpu(): () => Gpu {
  let gpu: Gpu | undefined;
  beforeAll(async () => {
    gpu = await acquireNodeGpu();
  });
  afterAll(() => {
    gpu?.device.destroy();
    gpu = undefined;
  });
  return () => {
    if (!gpu) throw new Error('setupTestGpu(): the device is only available inside tests');
    return gpu;
  };
}

/** Submits `ops`, fails on any validation error, and reads `output` back. */
export async function runAndRead(
  device: GPUDevice,
  ops: readonly Op[],
  output: GPUBuffer,
  byteLength?: number,
): Promise<Float32Array> {
  device.pushErrorScope('validation');
  submitOps(device, ops);
  const error = await device.popErrorScope();
  if (error) throw new Error(`WebGPU validation error: ${error.message}`);
  return readFloat32(device, output, byteLength);
}

/** Largest |a - b| relative to the largest |b| (1 where b is all zero): robust for outputs near zero. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let maxDiff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i])) return Number.POSITIVE_INFINITY;
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return maxDiff / (scale || 1);
}

/** Central finite difference of scalar `f` with respect to x[i] (x is restored afterwards). */
export function finiteDifference(f: () => number, x: Float64Array, i: number, h = 1e-6): number {
  const saved = x[i];
  x[i] = saved + h;
  const plus = f();
  x[i] = saved - h;
  const minus = f();
  x[i] = saved;
  return (plus - minus) / (2 * h);
}
