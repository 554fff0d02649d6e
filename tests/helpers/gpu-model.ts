import type { ModelConfig } from '../../core/model-config';
import type { LoraModule } from '../../workers/engine/model/lora';
import { GpuWeights } from '../../workers/engine/model/weights';
import type { ReferenceLora } from '../../workers/engine/reference/transformer.cpu';

/** A reference model's weights (`randomWeights`) on the GPU, each tensor read as fp32. */
export function uploadWeights(
  device: GPUDevice,
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  options?: Parameters<typeof GpuWeights.upload>[3],
): Promise<GpuWeights> {
  return GpuWeights.upload(device, config, (key) => Float32Array.from(weights.get(key) ?? []), options);
}

/** `GpuLora.create`'s init that copies each module's A and B from a reference adapter (`randomLora`). */
export function fromReference(ref: ReferenceLora) {
  return (m: LoraModule, a: Float32Array, b: Float32Array): void => {
    const module = ref.modules.get(`${m.layer}.${m.projection}`);
    if (!module) throw new Error(`the reference adapter has no module ${m.layer}.${m.projection}`);
    a.set(module.A);
    b.set(module.B);
  };
}
