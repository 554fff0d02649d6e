/**
 * Continuing to train an adapter made elsewhere (exported from Hone, trained with TRL): the run takes the adapter's
 * own LoRA shape, since its tensors are that shape. Hone trains adapters on every layer with named target modules;
 * other adapters are refused with the reason.
 */
import { PROJECTIONS, type Projection } from '../model-config';
import type { AdapterConfig } from '../peft';
import type { TrainSettings } from './settings';

export type AdapterShape = Pick<TrainSettings, 'loraR' | 'loraAlpha' | 'rslora' | 'targets'>;

export function adapterShape(adapter: AdapterConfig, source: string): AdapterShape {
  const { targetModules, layersToTransform } = adapter;
  if (typeof targetModules === 'string') {
    throw new Error(`${source}: its target_modules is a regular expression; Hone continues adapters that name them`);
  }
  if (layersToTransform !== null) {
    throw new Error(
      `${source}: it adapts only layers ${layersToTransform.join(', ')}; Hone continues adapters on every layer`,
    );
  }
  const unknown = targetModules.filter((t) => !PROJECTIONS.includes(t as Projection));
  if (unknown.length > 0) throw new Error(`${source}: it targets ${unknown.join(', ')}, which Hone does not train`);
  return {
    loraR: adapter.r,
    loraAlpha: adapter.loraAlpha,
    rslora: adapter.useRslora,
    // In the layout's order, whatever order the config lists them in.
    targets: PROJECTIONS.filter((p) => targetModules.includes(p)),
  };
}
