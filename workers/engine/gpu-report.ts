import { GpuUnavailableError } from '../../core/adapter';
import type { GpuReport } from './api';
import { acquireGpu } from './gpu/device';
import { runSelfTest } from './self-test';

/** Acquires the device, runs the self-test, and releases the device; never throws. */
export async function gpuReport(gpu: GPU | undefined): Promise<GpuReport> {
  try {
    const { device, summary } = await acquireGpu(gpu);
    try {
      return { ok: true, adapter: summary, selfTest: await runSelfTest(device) };
    } finally {
      device.destroy();
    }
  } catch (error) {
    if (error instanceof GpuUnavailableError) return { ok: false, reason: error.reason, message: error.message };
    return { ok: false, reason: 'device-failed', message: `WebGPU failed: ${String(error)}` };
  }
}
