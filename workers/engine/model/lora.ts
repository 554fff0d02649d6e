import { type ModelConfig, type Projection, projectionShape } from '../../../core/model-config';
import { createStorageBuffer, readFloat32 } from '../gpu/buffers';

/**
 * LoRA adapters on the GPU with PEFT's semantics: y = x W^T + s (x A^T) B^T, A: [r, in], B: [out, r],
 * s = alpha / r (alpha / sqrt(r) with rsLoRA). All modules' A and B live in one flat buffer (and their
 * gradients and Adam moments in three more of the same layout), so clipping and AdamW are one dispatch each;
 * matmuls address a module's matrices by element offset.
 */
export interface LoraSettings {
  rank: number;
  alpha: number;
  useRslora: boolean;
  targets: readonly Projection[];
  /** Layers that get adapters (PEFT's layers_to_transform); all when absent. */
  layers?: readonly number[];
}

export interface LoraModule {
  layer: number;
  projection: Projection;
  inDim: number;
  outDim: number;
  /** Element offsets of A ([r, in]) and B ([out, r]) in the flat buffers. */
  offsetA: number;
  offsetB: number;
}

export function loraScale(s: Pick<LoraSettings, 'rank' | 'alpha' | 'useRslora'>): number {
  return s.useRslora ? s.alpha / Math.sqrt(s.rank) : s.alpha / s.rank;
}

/** Where each module's A and B sit in the flat layout, and the layout's total length. */
export function loraLayout(config: ModelConfig, settings: LoraSettings): { modules: LoraModule[]; length: number } {
  const modules: LoraModule[] = [];
  let length = 0;
  const layers = settings.layers ?? Array.from({ length: config.numLayers }, (_, l) => l);
  for (const layer of layers) {
    for (const projection of settings.targets) {
      const [outDim, inDim] = projectionShape(config, projection);
      modules.push({ layer, projection, inDim, outDim, offsetA: length, offsetB: length + settings.rank * inDim });
      length += settings.rank * (inDim + outDim);
    }
  }
  return { modules, length };
}

export class GpuLora {
  readonly scale: number;
  private readonly byKey: Map<string, LoraModule>;

  private constructor(
    readonly settings: LoraSettings,
    readonly modules: LoraModule[],
    readonly length: number,
    readonly params: GPUBuffer,
    readonly grads: GPUBuffer,
  ) {
    this.scale = loraScale(settings);
    this.byKey = new Map(modules.map((m) => [`${m.layer}.${m.projection}`, m]));
  }

  /** Allocates the adapter; `init` fills the flat parameter vector (A and B of every module, in layout order). */
  static create(
    device: GPUDevice,
    config: ModelConfig,
    settings: LoraSettings,
    init: (module: LoraModule, a: Float32Array, b: Float32Array) => void,
  ): GpuLora {
    const { modules, length } = loraLayout(config, settings);
    const flat = new Float32Array(length);
    for (const m of modules) {
      init(
        m,
        flat.subarray(m.offsetA, m.offsetA + settings.rank * m.inDim),
        flat.subarray(m.offsetB, m.offsetB + m.outDim * settings.rank),
      );
    }
    const params = createStorageBuffer(device, length * 4, 'lora params');
    device.queue.writeBuffer(params, 0, flat);
    const grads = createStorageBuffer(device, length * 4, 'lora grads');
    return new GpuLora(settings, modules, length, params, grads);
  }

  module(layer: number, projection: Projection): LoraModule | undefined {
    return this.byKey.get(`${layer}.${projection}`);
  }

  /** Each module's gradients, { A: [r, in], B: [out, r] }, keyed `${layer}.${projection}`. */
  async readGradients(device: GPUDevice): Promise<Map<string, { A: Float32Array; B: Float32Array }>> {
    return this.split(await readFloat32(device, this.grads, this.length * 4));
  }

  async readParams(device: GPUDevice): Promise<Map<string, { A: Float32Array; B: Float32Array }>> {
    return this.split(await readFloat32(device, this.params, this.length * 4));
  }

  private split(flat: Float32Array) {
    const r = this.settings.rank;
    return new Map(
      this.modules.map((m) => [
        `${m.layer}.${m.projection}`,
        {
          A: flat.slice(m.offsetA, m.offsetA + r * m.inDim),
          B: flat.slice(m.offsetB, m.offsetB + m.outDim * r),
        },
      ]),
    );
  }

  destroy(): void {
    this.params.destroy();
    this.grads.destroy();
  }
}
