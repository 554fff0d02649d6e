import type { Op } from './ops';

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** One compute pipeline per (device, WGSL source): kernels of the same variant share it. */
function pipelineFor(device: GPUDevice, code: string, label: string): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (!cache) {
    cache = new Map();
    pipelines.set(device, cache);
  }
  let pipeline = cache.get(code);
  if (!pipeline) {
    const module = device.createShaderModule({ code, label });
    pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    cache.set(code, pipeline);
  }
  return pipeline;
}

/** Uniform values in declaration order; each is one 4-byte slot, typed as the WGSL struct declares it. */
export type UniformValue = { u32: number } | { f32: number } | { i32: number };

export const u32 = (value: number): UniformValue => ({ u32: value });
export const f32 = (value: number): UniformValue => ({ f32: value });
export const i32 = (value: number): UniformValue => ({ i32: value });

/** Packs uniform values into a buffer sized to a multiple of 16 bytes, as uniform structs require. */
function packUniforms(values: readonly UniformValue[]): ArrayBuffer {
  const bytes = new ArrayBuffer(Math.max(16, Math.ceil((values.length * 4) / 16) * 16));
  const view = new DataView(bytes);
  values.forEach((v, i) => {
    if ('u32' in v) view.setUint32(i * 4, v.u32, true);
    else if ('i32' in v) view.setInt32(i * 4, v.i32, true);
    else view.setFloat32(i * 4, v.f32, true);
  });
  return bytes;
}

/**
 * A compiled WGSL compute kernel. Storage buffers bind at 0..n-1 in the order given, the uniform struct
 * (when the kernel has one) at binding n. Entry point `main`.
 */
export class Kernel {
  readonly pipeline: GPUComputePipeline;

  constructor(
    readonly device: GPUDevice,
    readonly code: string,
    readonly label: string,
  ) {
    this.pipeline = pipelineFor(device, code, label);
  }

  /**
   * An op that runs this kernel on `buffers` with `uniforms`, over `workgroups`. More storage buffers than the device
   * allows a kernel would fail silently on the GPU (its bind group invalid, its output untouched): refused here.
   */
  op(buffers: readonly GPUBuffer[], uniforms: readonly UniformValue[], workgroups: [number, number, number]): Op {
    const limit = this.device.limits.maxStorageBuffersPerShaderStage;
    if (buffers.length > limit) {
      throw new Error(`${this.label} binds ${buffers.length} storage buffers, over this GPU's ${limit} a kernel`);
    }
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
    let uniformBuffer: GPUBuffer | undefined;
    if (uniforms.length > 0) {
      const data = packUniforms(uniforms);
      const buffer = this.device.createBuffer({
        size: data.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `${this.label} uniforms`,
      });
      this.device.queue.writeBuffer(buffer, 0, data);
      entries.push({ binding: buffers.length, resource: { buffer } });
      uniformBuffer = buffer;
    }
    const bindGroup = this.device.createBindGroup({ layout: this.pipeline.getBindGroupLayout(0), entries });
    return {
      kind: 'dispatch',
      label: this.label,
      pipeline: this.pipeline,
      bindGroup,
      workgroups,
      uniforms: uniformBuffer,
    };
  }
}

/** Workgroups needed to cover `n` items with `size` per workgroup, split over y when x would exceed the limit. */
export function grid1d(n: number, size: number, maxPerDimension = 65535): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  if (groups <= maxPerDimension) return [groups, 1, 1];
  return [maxPerDimension, Math.ceil(groups / maxPerDimension), 1];
}
