/**
 * A run's adapter as files: its PEFT folder (with its model card and metrics), and folded into the base model's
 * weights in the Hugging Face layout. `run-exports.ts` zips, writes or publishes them.
 */
import type { Checkpoint, ReadFile } from '../../core/checkpoint';
import { type AdapterExport, adapterFolderFiles } from '../../core/export/adapter-folder';
import { baseModelId, exportName } from '../../core/export/base-model-id';
import { mergedModelFiles } from '../../core/export/merge';
import type { CardInfo } from '../../core/export/model-card';
import type { ModelConfig } from '../../core/model-config';
import { loraScale } from '../../core/peft';
import type { TrainSettings } from '../../core/training/settings';
import { loraLayout, loraSettingsFor, splitLoraVector } from './model/lora';
import type { MetricRecord } from './train/training-session';

export const FULL_RUN_HAS_NO_ADAPTER =
  'This run trains every weight: it has no adapter to switch on and off or to export as one.';

/** A run's adapter at one step, as a flat vector laid out as `GpuLora` lays it out for the settings. */
export interface FlatAdapter {
  settings: TrainSettings;
  params: Float32Array;
  metrics: readonly MetricRecord[];
  step: number;
  /** What it trained on, for the model card; null when not known (a kept checkpoint). */
  data: CardInfo['data'];
}

/** The adapter split into its modules, named for the model, the method and the step. */
export function adapterExport(model: { label: string; config: ModelConfig }, found: FlatAdapter): AdapterExport {
  const { settings, params, step } = found;
  if (settings.full) throw new Error(FULL_RUN_HAS_NO_ADAPTER);
  const layout = loraLayout(model.config, loraSettingsFor(model.config, settings, 0));
  const { modules, rest } = splitLoraVector(layout, settings.loraR, params);
  return {
    name: exportName(model.label, settings.method, `step${step}`),
    baseModel: baseModelId(model.label),
    baseOnHub: model.label.startsWith('hub:'),
    settings,
    modules,
    scoreHead: settings.method === 'rm' ? rest : undefined,
    data: found.data,
    metrics: [...found.metrics],
  };
}

/** The adapter's folder: PEFT's two files, the model card, the metrics. */
export function adapterFiles(adapter: AdapterExport): Map<string, Uint8Array> {
  return new Map(Object.entries(adapterFolderFiles(adapter)));
}

/** The base model's files, read again for a merged export. */
export interface BaseFiles {
  checkpoint: Checkpoint;
  read: ReadFile;
}

/** The adapter folded into the base's weights: a model folder that loads without PEFT. */
export function mergedFiles(base: BaseFiles, adapter: AdapterExport): Promise<Map<string, Blob>> {
  if (adapter.settings.method === 'rm') {
    throw new Error("A reward model's adapter scores answers: export it as an adapter, not merged into the model.");
  }
  const s = adapter.settings;
  const scale = loraScale({ r: s.loraR, loraAlpha: s.loraAlpha, useRslora: s.rslora });
  return mergedModelFiles(base.checkpoint, base.read, { r: s.loraR, scale, modules: adapter.modules });
}
