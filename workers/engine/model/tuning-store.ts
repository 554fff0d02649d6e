import type { AdapterSummary } from '../../../core/adapter';
import type { FileCache } from '../../../core/hub';
import { fnv1a } from '../../../core/random';
import type { KernelChoices } from './kernels';
import type { MatmulChoice, MatmulTile } from './matmul-tuner';

/**
 * Matmul tuning kept across sessions, so only the first run on an adapter pays for timing its products: one JSON
 * file per adapter and candidate list in a FileCache (Cache Storage in the browser, a folder in the CLI's cache),
 * mapping each product's shape (and each set of products, kernels/matmul-set.ts) to the variant that won. The key
 * names the adapter and fingerprints the candidates, so a new driver description or a changed candidate list starts
 * afresh; bump VERSION when kernels change enough that old winners may no longer win.
 */
const VERSION = 1;

export interface TuningStore {
  /** The variants chosen before, by shape; empty when none were kept or the file is unreadable. */
  load(): Promise<Record<string, MatmulChoice>>;
  save(choices: Record<string, MatmulChoice>): Promise<void>;
}

/** The file's key for an adapter and a candidate list. */
export function tuningKey(adapter: AdapterSummary, candidates: MatmulTile[]): string {
  const { vendor, architecture, device, description } = adapter;
  const name =
    [vendor, architecture, device]
      .filter(Boolean)
      .join('-')
      .replace(/[^\w.-]+/g, '_') || 'adapter';
  const fingerprint = fnv1a(JSON.stringify({ VERSION, vendor, architecture, device, description, candidates }));
  return `matmul-tuning/${name}-${fingerprint.toString(16)}.json`;
}

/** The store for kernels of `choices` on `adapter`: null when the choices do not tune or there is no cache. */
export function tuningStoreFor(
  cache: FileCache | null,
  adapter: AdapterSummary,
  choices: KernelChoices,
): TuningStore | null {
  return cache && choices.tune ? fileTuningStore(cache, tuningKey(adapter, choices.tune)) : null;
}

export function fileTuningStore(cache: FileCache, key: string): TuningStore {
  return {
    async load() {
      try {
        const file = await cache.get(key);
        return file ? parseChoices(await file.text()) : {};
      } catch (error) {
        // A broken or unreadable file only costs a new tuning, which then replaces it.
        console.warn(`matmul tuning ${key} is unreadable and will be timed again: ${(error as Error).message}`);
        return {};
      }
    },
    async save(choices) {
      try {
        await cache.put(key, new Blob([JSON.stringify({ version: VERSION, choices })], { type: 'application/json' }));
      } catch (error) {
        // Keeping the result is a convenience: a full or blocked cache must not stop a run.
        console.warn(`matmul tuning could not be kept in ${key}: ${(error as Error).message}`);
      }
    },
  };
}

/**
 * The choices in a saved file. Tiles are only shapes checked here: the tuner adopts a tile only if it is one of its
 * candidates.
 */
function parseChoices(text: string): Record<string, MatmulChoice> {
  const data = JSON.parse(text) as { version?: unknown; choices?: unknown };
  if (data.version !== VERSION || typeof data.choices !== 'object' || data.choices === null) {
    throw new Error(`expected {"version": ${VERSION}, "choices": {...}}`);
  }
  return data.choices as Record<string, MatmulChoice>;
}
