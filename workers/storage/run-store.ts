import type { EvalReport } from '../engine/evaluate';
import type {
  AdapterSnapshot,
  MetricRecord,
  RunListing,
  RunStore,
  SavedRun,
  TrainRequest,
} from '../engine/train/training-session';
import { KEPT_ADAPTERS } from '../engine/train/training-session';

/**
 * The run store's layout, one folder per run, over any storage that holds named files: the browser's origin private
 * file system (`opfs-run-store.ts`) or a folder on disk (`hone train`'s `DIR/checkpoint`).
 *
 * A run's folder: `run.json` (the request, the dataset files' names and fingerprint, when it began), `data-I` (a copy
 * of each dataset file, so a run resumes without asking for them again), `FIELD-I` (the folders the request carries:
 * a reward model, the adapter it continues), `trainer.json` + `optimizer.safetensors` (the latest checkpoint),
 * `metrics.jsonl`, `adapter-STEP` (the adapter at each checkpoint, raw float32, the newest KEPT_ADAPTERS) and
 * `ended` (the run finished or was stopped).
 */

/** A run's folder: named files. */
export interface RunFolder {
  read(name: string): Promise<Blob | null>;
  write(name: string, content: Blob | string | Uint8Array): Promise<void>;
  /** Removes the file; one that is not there is no error. */
  remove(name: string): Promise<void>;
  names(): Promise<string[]>;
}

/** Where the run folders live. */
export interface RunFolders {
  /** Every run's id, oldest first; the last is the current run. */
  ids(): Promise<string[]>;
  /** A run's folder; null when it is gone. */
  open(id: string): Promise<RunFolder | null>;
  /** A new, empty folder for a run that begins now (the newest, so the current run). */
  create(): Promise<{ id: string; folder: RunFolder }>;
  remove(id: string): Promise<void>;
}

const ADAPTER_PREFIX = 'adapter-';

/** The request's fields that carry picked folders, kept beside the data. */
const ATTACHED = ['reward', 'initialAdapter'] as const;

/** `run.json`: the request, with the attached folders' files by path only. */
interface RunRecord extends Omit<TrainRequest, 'reward' | 'initialAdapter'> {
  files: string[];
  fingerprint: string;
  /** When the run began (ms since the epoch). */
  started: number;
  reward?: unknown;
  initialAdapter?: unknown;
}

/** A short fingerprint of the dataset files' bytes, so runs on the same data can be recognized. */
async function fingerprint(files: { blob: Blob }[]): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await new Blob(files.map((f) => f.blob)).arrayBuffer());
  return [...new Uint8Array(digest).slice(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function writeMetrics(dir: RunFolder, metrics: MetricRecord[]): Promise<void> {
  await dir.write('metrics.jsonl', metrics.map((m) => `${JSON.stringify(m)}\n`).join(''));
}

/** JSON text's value, or null when it is cut short or damaged (a tab closed or a disk full mid-write). */
function parseOrNull<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

async function readMetrics(dir: RunFolder): Promise<MetricRecord[]> {
  const file = await dir.read('metrics.jsonl');
  if (!file) return [];
  return (await file.text()).split('\n').flatMap((line) => parseOrNull<MetricRecord>(line) ?? []);
}

/** The run's record; null for a folder without one or with a damaged one, which the runs list then leaves out. */
async function readRecord(dir: RunFolder): Promise<RunRecord | null> {
  const run = await dir.read('run.json');
  return run && parseOrNull<RunRecord>(await run.text());
}

/** The steps of the adapters kept in the folder, oldest first. */
async function adapterSteps(dir: RunFolder): Promise<number[]> {
  return (await dir.names())
    .filter((name) => name.startsWith(ADAPTER_PREFIX))
    .map((name) => Number(name.slice(ADAPTER_PREFIX.length)))
    .sort((a, b) => a - b);
}

/** Writes an adapter and lets the oldest go past KEPT_ADAPTERS. */
async function keepAdapter(dir: RunFolder, adapter: AdapterSnapshot): Promise<void> {
  const { params } = adapter;
  await dir.write(
    `${ADAPTER_PREFIX}${adapter.step}`,
    new Uint8Array(params.buffer, params.byteOffset, params.byteLength),
  );
  const steps = await adapterSteps(dir);
  for (const step of steps.slice(0, Math.max(0, steps.length - KEPT_ADAPTERS))) {
    await dir.remove(`${ADAPTER_PREFIX}${step}`);
  }
}

/** A run store keeping the newest `keptRuns` runs in `folders`. */
export function folderRunStore(folders: RunFolders, keptRuns: number): RunStore {
  const current = async (): Promise<RunFolder | null> => {
    const id = (await folders.ids()).at(-1);
    return id === undefined ? null : folders.open(id);
  };
  return {
    async begin(request, files) {
      const { id, folder } = await folders.create();
      const older = (await folders.ids()).filter((other) => other !== id);
      for (const old of older.slice(0, Math.max(0, older.length - (keptRuns - 1)))) await folders.remove(old);
      for (const [i, f] of files.entries()) await folder.write(`data-${i}`, f.blob);
      const record: RunRecord = {
        ...request,
        files: files.map((f) => f.name),
        fingerprint: await fingerprint(files),
        started: Date.now(),
      };
      for (const field of ATTACHED) {
        const attached = request[field];
        if (!attached || !('files' in attached)) continue;
        for (const [i, f] of attached.files.entries()) await folder.write(`${field}-${i}`, f.file);
        record[field] = { ...attached, files: attached.files.map((f) => f.path) };
      }
      await folder.write('run.json', JSON.stringify(record));
    },
    async reopen(settings) {
      const dir = await current();
      const record = dir && (await readRecord(dir));
      if (!dir || !record) return;
      await dir.write('run.json', JSON.stringify({ ...record, settings }));
      await dir.remove('ended');
    },
    async saveCheckpoint(files, metrics, adapter) {
      const dir = await current();
      if (!dir) return;
      for (const [name, content] of Object.entries(files)) await dir.write(name, content);
      await writeMetrics(dir, metrics);
      if (adapter) await keepAdapter(dir, adapter);
    },
    async saveMetrics(metrics) {
      const dir = await current();
      if (dir) await writeMetrics(dir, metrics);
    },
    async end(metrics) {
      const dir = await current();
      if (!dir) return;
      await writeMetrics(dir, metrics);
      await dir.write('ended', '');
    },
    async keptRun(id) {
      const dir = await folders.open(id);
      const record = dir && (await readRecord(dir));
      if (!dir || !record) return null;
      return { request: record as TrainRequest, steps: await adapterSteps(dir), metrics: await readMetrics(dir) };
    },
    async runs() {
      const listed: RunListing[] = [];
      for (const id of (await folders.ids()).reverse()) {
        const dir = await folders.open(id);
        const record = dir && (await readRecord(dir));
        if (!dir || !record) continue;
        listed.push({
          id,
          // Runs kept before run.json held the start have it as their id.
          started: record.started ?? Number(id),
          model: record.model,
          settings: record.settings,
          files: record.files,
          fingerprint: record.fingerprint,
          ended: (await dir.read('ended')) !== null,
          metrics: await readMetrics(dir),
          steps: await adapterSteps(dir),
        });
      }
      return listed;
    },
    async saveEvaluation(report) {
      const dir = await current();
      if (dir) await dir.write('evaluation.json', JSON.stringify(report));
    },
    async evaluation() {
      const file = await (await current())?.read('evaluation.json');
      return file ? parseOrNull<EvalReport>(await file.text()) : null;
    },
    async loadAdapter(id, step) {
      const file = await (await folders.open(id))?.read(`${ADAPTER_PREFIX}${step}`);
      return file ? new Float32Array(await file.arrayBuffer()) : null;
    },
    async load() {
      const dir = await current();
      const record = dir && (await readRecord(dir));
      if (!dir || !record) return null;
      const trainer = await dir.read('trainer.json');
      const optimizer = await dir.read('optimizer.safetensors');
      const files = [];
      for (const [i, name] of record.files.entries()) {
        const blob = await dir.read(`data-${i}`);
        if (!blob) return null;
        files.push({ name, blob });
      }
      const request = { ...record } as unknown as Record<string, unknown>;
      for (const field of ATTACHED) {
        const attached = record[field] as { files?: string[] } | undefined;
        if (!attached?.files) continue;
        const kept = [];
        for (const [i, path] of attached.files.entries()) {
          const file = await dir.read(`${field}-${i}`);
          if (!file) return null;
          kept.push({ path, file });
        }
        request[field] = { ...attached, files: kept };
      }
      const saved: SavedRun = {
        request: request as unknown as TrainRequest,
        files,
        checkpoint:
          trainer && optimizer
            ? { json: await trainer.text(), tensors: new Uint8Array(await optimizer.arrayBuffer()) }
            : null,
        metrics: await readMetrics(dir),
        ended: (await dir.read('ended')) !== null,
      };
      return saved;
    },
    async clear() {
      const id = (await folders.ids()).at(-1);
      if (id !== undefined) await folders.remove(id);
    },
  };
}
