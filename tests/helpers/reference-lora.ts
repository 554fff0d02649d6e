import type { LoadedAdapter } from '../../core/checkpoint';
import type { ReferenceLora } from '../../workers/engine/reference/model.cpu';

/** A loaded PEFT adapter as the float64 reference takes it. */
export function referenceLora(adapter: LoadedAdapter): ReferenceLora {
  return {
    rank: adapter.config.r,
    alpha: adapter.config.loraAlpha,
    useRslora: adapter.config.useRslora,
    modules: new Map(
      adapter.modules.map((m) => [
        `${m.layer}.${m.projection}`,
        {
          A: Float64Array.from(adapter.file.readFloat32(m.keyA)),
          B: Float64Array.from(adapter.file.readFloat32(m.keyB)),
        },
      ]),
    ),
  };
}
