import type { LoadedAdapter } from '../../../core/checkpoint';
import { type ModelConfig, PROJECTIONS, type Projection, projectionShape } from '../../../core/model-config';
import { loraScale } from '../../../core/peft';
import { mulberry32 } from '../../../core/random';
import type { TrainSettings } from '../../../core/training/settings';
import { createStorageBuffer, readFloat32 } from '../gpu/buffers';
import type { GroupedProduct } from '../kernels/grouped-matmul';
import type { LowRank, OperandMask } from '../kernels/matmul';

/**
 * LoRA adapters on the GPU with PEFT's semantics: y = x W^T + s (x A^T) B^T, A: [r, in], B: [out, r],
 * s = alpha / r (alpha / sqrt(r) with rsLoRA). All modules' A and B live in one flat buffer (and their
 * gradients and Adam moments in three more of the same layout), so clipping and AdamW are one dispatch each;
 * matmuls address a module's matrices by element offset.
 */
export interface LoraSettings {
  /** Rank, alpha and rsLoRA, named as PEFT's adapter_config.json names them. */
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  /** PEFT's lora_dropout: the probability of zeroing each value of the adapter path's input while training. */
  loraDropout: number;
  /** The adapted projections, in the order their A and B are laid out. */
  modules: ReadonlyArray<{ layer: number; projection: Projection }>;
}

/** The adapter a run's settings describe, on every layer; `loraDropout` 0 for inference. */
export function loraSettingsFor(config: ModelConfig, s: TrainSettings, loraDropout: number): LoraSettings {
  return {
    r: s.loraR,
    loraAlpha: s.loraAlpha,
    useRslora: s.rslora,
    loraDropout,
    modules: everyLayer(config, s.targets),
  };
}

/**
 * A flat vector in the layout's order split into each module's A ([r, in]) and B ([out, r]), keyed
 * `${layer}.${projection}`; what follows the adapter (a reward model's head) is `rest`.
 */
export function splitLoraVector(
  layout: { modules: LoraModule[]; length: number },
  r: number,
  flat: Float32Array,
): { modules: Map<string, { A: Float32Array; B: Float32Array }>; rest: Float32Array } {
  const { modules, length } = layout;
  return {
    modules: new Map(
      modules.map((m) => [
        `${m.layer}.${m.projection}`,
        {
          A: flat.slice(m.offsetA, m.offsetA + r * m.inDim),
          B: flat.slice(m.offsetB, m.offsetB + m.outDim * r),
        },
      ]),
    ),
    rest: flat.slice(length),
  };
}

/** Adapters on `targets` in every layer. */
export function everyLayer(config: ModelConfig, targets: readonly Projection[]): LoraSettings['modules'] {
  return Array.from({ length: config.numLayers }, (_, layer) =>
    targets.map((projection) => ({ layer, projection })),
  ).flat();
}

export interface LoraModule {
  /** Position in the layout; also picks the module's own dropout mask. */
  index: number;
  layer: number;
  projection: Projection;
  inDim: number;
  outDim: number;
  /** Element offsets of A ([r, in]) and B ([out, r]) in the flat buffers. */
  offsetA: number;
  offsetB: number;
}

/** Where each module's A and B sit in the flat layout, and the layout's total length. */
export function loraLayout(config: ModelConfig, settings: LoraSettings): { modules: LoraModule[]; length: number } {
  const modules: LoraModule[] = [];
  let length = 0;
  for (const { layer, projection } of settings.modules) {
    if (layer < 0 || layer >= config.numLayers)
      throw new Error(`LoRA module on layer ${layer}: the model has ${config.numLayers}`);
    const [outDim, inDim] = projectionShape(config, projection);
    const index = modules.length;
    modules.push({ index, layer, projection, inDim, outDim, offsetA: length, offsetB: length + settings.r * inDim });
    length += settings.r * (inDim + outDim);
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
        flat.subarray(m.offsetA, m.offsetA + settings.r * m.inDim),
        flat.subarray(m.offsetB, m.offsetB + m.outDim * settings.r),
      );
    }
    const params = createStorageBuffer(device, length * 4, 'lora params');
    device.queue.writeBuffer(params, 0, flat);
    const grads = createStorageBuffer(device, length * 4, 'lora grads');
    return new GpuLora(settings, modules, length, params, grads);
  }

  /**
   * A PEFT adapter read from its files, widened to fp32, in the file's module order; with dropout off (this is for
   * inference and for comparing gradients, as PyTorch's eval mode).
   */
  static fromAdapter(device: GPUDevice, config: ModelConfig, adapter: LoadedAdapter): GpuLora {
    return GpuLora.create(
      device,
      config,
      {
        r: adapter.config.r,
        loraAlpha: adapter.config.loraAlpha,
        useRslora: adapter.config.useRslora,
        loraDropout: 0,
        modules: adapter.modules,
      },
      adapterInit(adapter),
    );
  }

  module(layer: number, projection: Projection): LoraModule | undefined {
    return this.byKey.get(`${layer}.${projection}`);
  }

  /**
   * x A^T [rows, r] of `modules`, all reading x [rows, in] (through `maskOf(m)`'s dropout where given), into `xa`
   * at element `slotOf(m, i)` each, as products for a grouped matmul (kernels/grouped-matmul.ts); and the low-rank
   * term each module's base product then adds, s (x A^T) B^T, by projection.
   */
  inputProducts(
    modules: readonly LoraModule[],
    x: GPUBuffer,
    xa: GPUBuffer,
    rows: number,
    slotOf: (m: LoraModule, i: number) => number,
    maskOf?: (m: LoraModule) => OperandMask | undefined,
  ): { products: GroupedProduct[]; lowRanks: Partial<Record<Projection, LowRank>> } {
    const r = this.settings.r;
    const products = modules.map((m, i) => ({
      a: x,
      b: this.params,
      transA: false,
      transB: true,
      shape: { M: rows, N: r, K: m.inDim, offsetB: m.offsetA, offsetC: slotOf(m, i) },
      mask: maskOf?.(m),
    }));
    const lowRanks = Object.fromEntries(
      modules.map((m, i) => [
        m.projection,
        { l: xa, r: this.params, rank: r, offsetL: slotOf(m, i), offsetR: m.offsetB, scale: this.scale },
      ]),
    );
    return { products, lowRanks };
  }

  /** Each module's gradients, { A: [r, in], B: [out, r] }, keyed `${layer}.${projection}`. */
  async readGradients(device: GPUDevice): Promise<Map<string, { A: Float32Array; B: Float32Array }>> {
    return this.split(await readFloat32(device, this.grads, this.length * 4));
  }

  async readParams(device: GPUDevice): Promise<Map<string, { A: Float32Array; B: Float32Array }>> {
    return this.split(await readFloat32(device, this.params, this.length * 4));
  }

  private split(flat: Float32Array) {
    return splitLoraVector(this, this.settings.r, flat).modules;
  }

  destroy(): void {
    this.params.destroy();
    this.grads.destroy();
  }
}

/** Initialization from a PEFT adapter's tensors, module by module (a layout may hold them in another order). */
export function adapterInit(adapter: LoadedAdapter): (module: LoraModule, a: Float32Array, b: Float32Array) => void {
  const byModule = new Map(adapter.modules.map((m) => [`${m.layer}.${m.projection}`, m]));
  return (m, a, b) => {
    const found = byModule.get(`${m.layer}.${m.projection}`);
    if (!found) throw new Error(`the adapter has no module ${m.layer}.${m.projection}`);
    a.set(adapter.file.readFloat32(found.keyA));
    b.set(adapter.file.readFloat32(found.keyB));
  };
}

/**
 * PEFT's default initialization: A Kaiming-uniform with a = sqrt(5) (nn.Linear's default, bound 1 / sqrt(in)),
 * B zeros, so the adapted model starts equal to the base model.
 */
export function peftInit(seed: number): (module: LoraModule, a: Float32Array, b: Float32Array) => void {
  return (module, a, b) => {
    const next = mulberry32(seed ^ (module.layer * 7919 + PROJECTIONS.indexOf(module.projection) * 104729));
    const bound = 1 / Math.sqrt(module.inDim);
    for (let i = 0; i < a.length; i++) a[i] = (2 * next() - 1) * bound;
    b.fill(0);
  };
}
