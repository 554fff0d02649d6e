import { type AdapterSummary, GpuUnavailableError } from '../../../core/adapter';

/** The limits Hone asks for: everything the adapter offers that the engine's kernels use. */
const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * Storage buffers a kernel may bind, at most: Chrome's tier on most devices (10), whatever more the adapter offers,
 * so every kernel plan the engine records in Node (the CLI, the tests) is one a browser can run.
 */
const STORAGE_BUFFERS = 10;

/** Optional features the engine uses when present. */
const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];

export interface Gpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

export function summarizeAdapter(adapter: GPUAdapter, wgslFeatures: ReadonlySet<string>): AdapterSummary {
  const info = adapter.info;
  const limits = adapter.limits;
  const features = [...adapter.features].map(String).sort();
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    // Newer implementations report this on the info object, older ones on the adapter.
    isFallbackAdapter: Boolean(
      (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
        (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
    features,
    shaderF16: adapter.features.has('shader-f16'),
    subgroups: adapter.features.has('subgroups'),
    pointerParameters: ['unrestricted_pointer_parameters', 'pointer_composite_access'].every((f) =>
      wgslFeatures.has(f),
    ),
    limits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  };
}

/**
 * Gets an adapter and a device with the adapter's full limits (the defaults are far lower, e.g. 128 MiB
 * storage bindings). Software adapters are accepted: they are how Hone is tested on machines without a GPU.
 */
export async function acquireGpu(gpu: GPU | undefined): Promise<Gpu> {
  if (!gpu) {
    throw new GpuUnavailableError('no-webgpu', 'This environment has no WebGPU (navigator.gpu is missing).');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new GpuUnavailableError(
      'no-adapter',
      'WebGPU is present but no adapter was found (the GPU may be blocklisted or WebGPU disabled).',
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  requiredLimits.maxStorageBuffersPerShaderStage = Math.min(
    adapter.limits.maxStorageBuffersPerShaderStage,
    STORAGE_BUFFERS,
  );
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (error) {
    throw new GpuUnavailableError('device-failed', `The adapter refused to create a device: ${String(error)}`);
  }
  // Older implementations have no wgslLanguageFeatures: then none of them.
  const wgslFeatures = (gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures ?? new Set();
  return { adapter, device, summary: summarizeAdapter(adapter, wgslFeatures) };
}
