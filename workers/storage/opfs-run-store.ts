import {
  type AdapterSnapshot,
  KEPT_ADAPTERS,
  type MetricRecord,
  type RunStore,
} from '../engine/train/training-session';

/**
 * The browser's run store: a folder per run in the origin private file system (`hone-runs/ID`, the newest the
 * current run), each holding the run's request, a copy of its dataset files (so a reload can resume without asking
 * for them again) and their fingerprint, its latest checkpoint and metrics, and its adapter at each checkpoint
 * (`adapter-STEP`, raw float32). An `ended` file marks a run that finished or was stopped: not offered for
 * resuming, its adapters still there to compare. The newest KEPT_RUNS runs are kept, listed for comparing their
 * curves; they live in this browser profile only.
 */
const ROOT = 'hone-runs';
const KEPT_RUNS = 20;

async function runsRoot(): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
}

/** Every run's ID, oldest first (IDs are zero-padded start times). */
async function runIds(root: FileSystemDirectoryHandle): Promise<string[]> {
  const ids: string[] = [];
  for await (const name of (root as unknown as { keys(): AsyncIterable<string> }).keys()) ids.push(name);
  return ids.sort();
}

/** The current (newest) run's folder; null when there is none. */
async function folder(): Promise<FileSystemDirectoryHandle | null> {
  const root = await runsRoot();
  const id = (await runIds(root)).at(-1);
  return id === undefined ? null : root.getDirectoryHandle(id);
}

/** What a lookup finds, or null when the entry does not exist. */
async function unlessMissing<T>(lookup: Promise<T>): Promise<T | null> {
  try {
    return await lookup;
  } catch (error) {
    if ((error as DOMException).name === 'NotFoundError') return null;
    throw error;
  }
}

/** A kept run's folder by its ID; null when it is gone (runs past the newest KEPT_RUNS are removed). */
async function runFolder(id: string): Promise<FileSystemDirectoryHandle | null> {
  return unlessMissing((await runsRoot()).getDirectoryHandle(id));
}

/** A short fingerprint of the dataset files' bytes, so runs on the same data can be recognized. */
async function fingerprint(files: { blob: Blob }[]): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await new Blob(files.map((f) => f.blob)).arrayBuffer());
  return [...new Uint8Array(digest).slice(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function write(dir: FileSystemDirectoryHandle, name: string, content: Blob | string | Uint8Array): Promise<void> {
  const file = await dir.getFileHandle(name, { create: true });
  const writable = await file.createWritable();
  await writable.write(content instanceof Uint8Array ? new Uint8Array(content) : content);
  await writable.close();
}

async function read(dir: FileSystemDirectoryHandle, name: string): Promise<File | null> {
  return unlessMissing(dir.getFileHandle(name).then((handle) => handle.getFile()));
}

/** Removes the current run's folder; there may be none. */
async function remove(): Promise<void> {
  const root = await runsRoot();
  const id = (await runIds(root)).at(-1);
  if (id !== undefined) await root.removeEntry(id, { recursive: true });
}

async function writeMetrics(dir: FileSystemDirectoryHandle, metrics: MetricRecord[]): Promise<void> {
  await write(dir, 'metrics.jsonl', metrics.map((m) => JSON.stringify(m)).join('\n'));
}

async function readMetrics(dir: FileSystemDirectoryHandle): Promise<MetricRecord[]> {
  const file = await read(dir, 'metrics.jsonl');
  if (!file) return [];
  return (await file.text())
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** The request's fields that carry picked folders. */
const ATTACHED = ['reward', 'initialAdapter'] as const;

const ADAPTER_PREFIX = 'adapter-';

/** The steps of the adapters kept in the folder, oldest first. */
async function adapterSteps(dir: FileSystemDirectoryHandle): Promise<number[]> {
  const steps: number[] = [];
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) {
    if (name.startsWith(ADAPTER_PREFIX)) steps.push(Number(name.slice(ADAPTER_PREFIX.length)));
  }
  return steps.sort((a, b) => a - b);
}

/** Writes an adapter and lets the oldest go past KEPT_ADAPTERS. */
async function keepAdapter(dir: FileSystemDirectoryHandle, adapter: AdapterSnapshot): Promise<void> {
  const { params } = adapter;
  await write(
    dir,
    `${ADAPTER_PREFIX}${adapter.step}`,
    new Uint8Array(params.buffer, params.byteOffset, params.byteLength),
  );
  const steps = await adapterSteps(dir);
  for (const step of steps.slice(0, Math.max(0, steps.length - KEPT_ADAPTERS))) {
    await dir.removeEntry(`${ADAPTER_PREFIX}${step}`);
  }
}

export function opfsRunStore(): RunStore {
  return {
    async begin(request, files) {
      const root = await runsRoot();
      const id = String(Date.now()).padStart(15, '0');
      const dir = await root.getDirectoryHandle(id, { create: true });
      const older = (await runIds(root)).filter((other) => other !== id);
      for (const old of older.slice(0, Math.max(0, older.length - (KEPT_RUNS - 1)))) {
        await root.removeEntry(old, { recursive: true });
      }
      for (const [i, f] of files.entries()) await write(dir, `data-${i}`, f.blob);
      // The folders the request carries (a reward model, the adapter it continues) are kept beside the data, their
      // file names in run.json.
      const saved: Record<string, unknown> = {
        ...request,
        files: files.map((f) => f.name),
        fingerprint: await fingerprint(files),
      };
      for (const field of ATTACHED) {
        const attached = request[field];
        if (!attached || !('files' in attached)) continue;
        for (const [i, f] of attached.files.entries()) await write(dir, `${field}-${i}`, f.file);
        saved[field] = { ...attached, files: attached.files.map((f) => f.path) };
      }
      await write(dir, 'run.json', JSON.stringify(saved));
    },
    async saveCheckpoint(files, metrics, adapter) {
      const dir = await folder();
      if (!dir) return;
      for (const [name, content] of Object.entries(files)) await write(dir, name, content);
      await writeMetrics(dir, metrics);
      if (adapter) await keepAdapter(dir, adapter);
    },
    async saveAdapter(adapter) {
      const dir = await folder();
      if (dir) await keepAdapter(dir, adapter);
    },
    async saveMetrics(metrics) {
      const dir = await folder();
      if (dir) await writeMetrics(dir, metrics);
    },
    async end(metrics) {
      const dir = await folder();
      if (!dir) return;
      await writeMetrics(dir, metrics);
      await write(dir, 'ended', '');
    },
    async keptRun(id) {
      const dir = await runFolder(id);
      const run = dir && (await read(dir, 'run.json'));
      if (!dir || !run) return null;
      return { request: JSON.parse(await run.text()), steps: await adapterSteps(dir), metrics: await readMetrics(dir) };
    },
    async runs() {
      const root = await runsRoot();
      const listed = [];
      for (const id of (await runIds(root)).reverse()) {
        const dir = await root.getDirectoryHandle(id);
        const run = await read(dir, 'run.json');
        if (!run) continue;
        const request = JSON.parse(await run.text());
        listed.push({
          id,
          started: Number(id),
          model: request.model,
          settings: request.settings,
          files: request.files,
          fingerprint: request.fingerprint ?? '',
          ended: (await read(dir, 'ended')) !== null,
          metrics: await readMetrics(dir),
          steps: await adapterSteps(dir),
        });
      }
      return listed;
    },
    async loadAdapter(id, step) {
      const dir = await runFolder(id);
      const file = dir && (await read(dir, `${ADAPTER_PREFIX}${step}`));
      return file ? new Float32Array(await file.arrayBuffer()) : null;
    },
    async load() {
      const dir = await folder();
      if (!dir || (await read(dir, 'ended'))) return null;
      const run = await read(dir, 'run.json');
      const trainer = await read(dir, 'trainer.json');
      const optimizer = await read(dir, 'optimizer.safetensors');
      if (!run || !trainer || !optimizer) return null;
      const request = JSON.parse(await run.text());
      const files = [];
      for (const [i, name] of (request.files as string[]).entries()) {
        const blob = await read(dir, `data-${i}`);
        if (!blob) return null;
        files.push({ name, blob });
      }
      for (const field of ATTACHED) {
        const attached = request[field];
        if (!attached || !('files' in attached)) continue;
        const kept = [];
        for (const [i, path] of (attached.files as string[]).entries()) {
          const file = await read(dir, `${field}-${i}`);
          if (!file) return null;
          kept.push({ path, file });
        }
        attached.files = kept;
      }
      return {
        request,
        files,
        checkpoint: { json: await trainer.text(), tensors: new Uint8Array(await optimizer.arrayBuffer()) },
        metrics: await readMetrics(dir),
      };
    },
    clear: remove,
  };
}
