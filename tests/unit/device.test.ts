import { describe, expect, it } from 'vitest';
import { GpuUnavailableError } from '../../core/adapter';
import { acquireGpu } from '../../workers/engine/gpu/device';
import { gpuReport } from '../../workers/engine/gpu-report';
import { setupTestGpu } from '../helpers/gpu';

const gpu = setupTestGpu();

describe('acquireGpu', () => {
  it('says there is no WebGPU when navigator.gpu is missing', async () => {
    await expect(acquireGpu(undefined)).rejects.toMatchObject({ name: 'GpuUnavailableError', reason: 'no-webgpu' });
  });

  it('says there is no adapter when WebGPU finds none', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    const error = await acquireGpu(noAdapter).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GpuUnavailableError);
    expect(error).toMatchObject({ reason: 'no-adapter' });
  });

  it('requests the adapter’s own limits rather than the low defaults', () => {
    const { adapter, device, summary } = gpu();
    expect(device.limits.maxStorageBufferBindingSize).toBe(adapter.limits.maxStorageBufferBindingSize);
    expect(device.limits.maxBufferSize).toBe(adapter.limits.maxBufferSize);
    expect(summary.limits.maxStorageBufferBindingSize).toBe(adapter.limits.maxStorageBufferBindingSize);
    expect(summary.shaderF16).toBe(adapter.features.has('shader-f16'));
    expect(summary.description || summary.device || summary.vendor).not.toBe('');
  });
});

describe('gpuReport', () => {
  it('turns a failure into a report instead of throwing', async () => {
    const broken = {
      requestAdapter: async () => {
        throw new Error('adapter exploded');
      },
    } as unknown as GPU;
    const report = await gpuReport(broken);
    expect(report).toEqual({
      ok: false,
      reason: 'device-failed',
      message: expect.stringContaining('adapter exploded'),
    });
  });
});
