/**
 * An adapter's export: the PEFT folder (`adapter_config.json`, `adapter_model.safetensors`), its model card and
 * its metrics, zipped into one download whose files sit in a folder named for it.
 */
import { strToU8 } from 'fflate';
import type { Projection } from '../model-config';
import { serializeAdapter } from '../peft';
import type { TrainSettings } from '../training/settings';
import { type CardEvaluation, type CardInfo, cardMetrics, modelCard } from './model-card';
import { zipFolder } from './zip';

export interface AdapterExport {
  /** The folder's name inside the zip (and the zip's, with .zip). */
  name: string;
  baseModel: string;
  /** The base is a Hub repo (else a folder, loaded from its path). */
  baseOnHub?: boolean;
  settings: TrainSettings;
  /** Each module's A ([r, in]) and B ([out, r]), keyed `${layer}.${projection}`. */
  modules: Map<string, { A: Float32Array; B: Float32Array }>;
  /** A reward model's score head ([hidden]). */
  scoreHead?: Float32Array;
  data: CardInfo['data'];
  /** The run's metric records, as metrics.jsonl holds them. */
  metrics: Parameters<typeof cardMetrics>[0];
  /** The run's evaluation, for the card. */
  evaluation?: CardEvaluation | null;
}

/** The folder's files by name. */
export function adapterFolderFiles(e: Omit<AdapterExport, 'name'>): Record<string, Uint8Array> {
  const s = e.settings;
  const peft = serializeAdapter(
    {
      r: s.loraR,
      loraAlpha: s.loraAlpha,
      loraDropout: s.loraDropout,
      targetModules: s.targets satisfies Projection[],
      useRslora: s.rslora,
      layersToTransform: null,
      baseModelNameOrPath: e.baseModel,
    },
    e.modules,
    e.scoreHead,
  );
  const card = modelCard({
    baseModel: e.baseModel,
    baseOnHub: e.baseOnHub,
    settings: s,
    data: e.data,
    metrics: cardMetrics(e.metrics),
    evaluation: e.evaluation,
  });
  return {
    'adapter_config.json': strToU8(peft['adapter_config.json']),
    'adapter_model.safetensors': peft['adapter_model.safetensors'],
    'README.md': strToU8(card),
    'metrics.jsonl': strToU8(e.metrics.map((m) => JSON.stringify(m)).join('\n') + (e.metrics.length ? '\n' : '')),
  };
}

/** The folder as a zip. */
export function zipAdapterFolder(e: AdapterExport): Promise<Blob> {
  return zipFolder(e.name, new Map(Object.entries(adapterFolderFiles(e))));
}
