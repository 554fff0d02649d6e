/**
 * A LoRA adapter on its own as llama.cpp's LoRA GGUF (convert_lora_to_gguf.py): general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha, and for each adapted projection `blk.N.<name>.weight.lora_a` (PEFT's A
 * [r, in] as ggml dims [in, r]) and `.lora_b` (B [out, r] as dims [r, out]), llama's q and k B rows permuted as the
 * base weights are (A is not: the permutation acts on output rows). llama.cpp scales B·A by alpha / r, r read from
 * the tensors; alpha is written as PEFT's scale × r, so an rsLoRA adapter (scale alpha / √r) keeps its scale too.
 */
import type { LoadedAdapter } from '../../checkpoint';
import { type ModelConfig, PROJECTIONS, projectionKey } from '../../model-config';
import { loraScale } from '../../peft';
import type { MergeAdapter } from '../merge';
import { type GgufMetadata, type GgufPlan, type GgufTensor, gguf } from './format';
import { ggufArchitecture, ggufTensorName, permutedHeads, permuteRows, quantizationVersion, tensorType } from './model';

export type GgufLoraDtype = 'f32' | 'f16';

/** A loaded PEFT adapter's modules in the form merge.ts folds (and this file writes). */
export function mergeAdapterOf(adapter: LoadedAdapter): MergeAdapter {
  return {
    r: adapter.config.r,
    scale: loraScale(adapter.config),
    modules: new Map(
      adapter.modules.map((m) => [
        `${m.layer}.${m.projection}`,
        { A: adapter.file.readFloat32(m.keyA), B: adapter.file.readFloat32(m.keyB) },
      ]),
    ),
  };
}

export interface LoraGgufOptions {
  dtype: GgufLoraDtype;
  /** general.name */
  name: string;
}

/** The adapter's GGUF plan, for the model `config` it was trained on. */
export function loraGgufPlan(config: ModelConfig, adapter: MergeAdapter, options: LoraGgufOptions): GgufPlan {
  const metadata: GgufMetadata = new Map();
  metadata.set('general.architecture', gguf.string(ggufArchitecture(config)));
  metadata.set('general.type', gguf.string('adapter'));
  metadata.set('general.name', gguf.string(options.name));
  metadata.set('adapter.type', gguf.string('lora'));
  metadata.set('adapter.lora.alpha', gguf.f32(adapter.scale * adapter.r));
  for (const [key, value] of quantizationVersion()) metadata.set(key, value);
  metadata.set('general.alignment', gguf.u32(32));

  const tensors: GgufTensor[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const projection of PROJECTIONS) {
      const module = adapter.modules.get(`${layer}.${projection}`);
      if (!module) continue;
      const base = ggufTensorName(config, projectionKey(layer, projection));
      const r = adapter.r;
      const inDim = module.A.length / r;
      const outDim = module.B.length / r;
      if (!Number.isInteger(inDim) || !Number.isInteger(outDim)) {
        throw new Error(`LoRA ${layer}.${projection}: A and B do not hold whole rank-${r} matrices`);
      }
      const heads = permutedHeads(config, projection);
      const a = `${base}.lora_a`;
      const b = `${base}.lora_b`;
      tensors.push({
        name: a,
        dims: [inDim, r],
        type: tensorType(a, [inDim, r], options.dtype),
        values: async () => module.A,
      });
      tensors.push({
        name: b,
        dims: [r, outDim],
        type: tensorType(b, [r, outDim], options.dtype),
        values: async () => (heads ? permuteRows(module.B, heads, r) : module.B),
      });
    }
  }
  if (tensors.length === 0) throw new Error('the adapter has no LoRA modules for this model');
  return { metadata, tensors };
}
