import type { BasePrecision } from '../../core/base-precision';
import type { Checkpoint } from '../../core/checkpoint';
import { weightBytes } from '../../core/model-memory';
import { GpuWeights } from './model/weights';

/**
 * A checkpoint's weights on the GPU (with `halfMatrices`, the matrices at fp16; with a `base` below 16-bit, the
 * projections quantized), the GPU's own failures (out of memory, refused buffers) turned into plain words; `what`
 * names the weights in those words.
 */
export async function uploadChecked(
  device: GPUDevice,
  checkpoint: Checkpoint,
  options: { halfMatrices: boolean; base?: BasePrecision; what: string },
): Promise<GpuWeights> {
  const { halfMatrices, base = 'f16', what } = options;
  const quantized = base === 'f16' ? null : base;
  const config = checkpoint.config;
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let weights: GpuWeights;
  try {
    weights = await GpuWeights.upload(device, config, (key) => checkpoint.readFloat32(key), {
      halfMatrices,
      base: quantized,
    });
  } catch (error) {
    await device.popErrorScope();
    await device.popErrorScope();
    throw new Error(`Could not put ${what} on the GPU: ${(error as Error).message}`);
  }
  const invalid = await device.popErrorScope();
  const outOfMemory = await device.popErrorScope();
  const failure = outOfMemory ?? invalid;
  if (failure) {
    weights.destroy();
    const size = `${(weightBytes(config, { halfMatrices, base }) / 2 ** 30).toFixed(2)} GiB`;
    throw new Error(
      outOfMemory
        ? `Not enough GPU memory for ${what} (${size}). Close other GPU-heavy tabs, or pick a smaller model.`
        : `The GPU refused ${what} (${failure.message}).`,
    );
  }
  return weights;
}
