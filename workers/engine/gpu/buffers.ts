/** Small helpers for moving data between JavaScript and GPU buffers. */

// A function, not a constant: in Node the GPU* globals exist only once the webgpu package is loaded, which
// may come after this module is evaluated.
const storageUsage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A storage buffer holding `data`. Sizes are rounded up to 4 bytes as WebGPU requires. */
export function uploadBuffer(device: GPUDevice, data: ArrayBufferView, label?: string): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ size, usage: storageUsage(), mappedAtCreation: true, label });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** A zero-filled storage buffer of `byteLength` bytes. */
export function createStorageBuffer(device: GPUDevice, byteLength: number, label?: string): GPUBuffer {
  return device.createBuffer({ size: Math.max(4, Math.ceil(byteLength / 4) * 4), usage: storageUsage(), label });
}

/** Copies `byteLength` bytes of a storage buffer back to the CPU as float32 values. */
export async function readFloat32(
  device: GPUDevice,
  source: GPUBuffer,
  byteLength = source.size,
): Promise<Float32Array<ArrayBuffer>> {
  const staging = device.createBuffer({ size: byteLength, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, byteLength);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/** Copies `byteLength` bytes of a storage buffer back to the CPU as uint32 values (token ids). */
export async function readUint32(device: GPUDevice, source: GPUBuffer, byteLength = source.size): Promise<Uint32Array> {
  return new Uint32Array((await readFloat32(device, source, byteLength)).buffer);
}

/** The first `length` float32 values held by `buffers` one after another (a tensor split into chunks). */
export async function readConcatenated(
  device: GPUDevice,
  buffers: readonly GPUBuffer[],
  length: number,
): Promise<Float32Array> {
  const out = new Float32Array(length);
  let at = 0;
  for (const buffer of buffers) {
    if (at >= length) break;
    const part = await readFloat32(device, buffer);
    out.set(part.subarray(0, length - at), at);
    at += part.length;
  }
  return out;
}
