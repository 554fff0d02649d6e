/**
 * What Hone knows about the WebGPU adapter it trains on. Plain data, so it crosses worker boundaries
 * and prints as JSON from the CLI.
 */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software (CPU) adapter such as SwiftShader or lavapipe: correct but slow. */
  isFallbackAdapter: boolean;
  features: string[];
  shaderF16: boolean;
  subgroups: boolean;
  /**
   * WGSL functions may take storage pointers and index them (the language features unrestricted_pointer_parameters
   * and pointer_composite_access), which the engine's sets of matmul products are written with.
   */
  pointerParameters: boolean;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
}

/** Why no device could be had, in words a person can act on. */
export type GpuUnavailableReason = 'no-webgpu' | 'no-adapter' | 'device-failed';

export class GpuUnavailableError extends Error {
  constructor(
    readonly reason: GpuUnavailableReason,
    message: string,
  ) {
    super(message);
    this.name = 'GpuUnavailableError';
  }
}
