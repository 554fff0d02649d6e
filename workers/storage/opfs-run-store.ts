import {
  type AdapterSnapshot,
  KEPT_ADAPTERS,
  type MetricRecord,
  type RunStore,
} from '../engine/train/training-session';

/**
 * The browser's run store: one folder in the origin private file system holding the current run's request, a copy
 * of its dataset files (so a reload can resume without asking for them again), its latest checkpoint and metrics,
 * and its adapter at each checkpoint (`adapter-STEP`, raw float32). An `ended` file marks a run that finished or
 * was stopped: not offered for resuming, its adapters still there to compare. It lives in this browser profile
 * only and is replaced when a new run starts.
 */
const FOLDER = 'hone-current-run';

async function folder(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle(FOLDER, { create });
  } catch (error) {
    if ((error as DOMException).name === 'NotFoundError') return null;
    throw error;
  }
}

async function write(dir: FileSystemDirectoryHandle, name: string, content: Blob | string | Uint8Array): Promise<void> {
  const file = await dir.getFileHandle(name, { create: true });
  const writable = await file.createWritable();
  await writable.write(content instanceof Uint8Array ? new Uint8Array(content) : content);
  await writable.close();
}

async function read(dir: FileSystemDirectoryHandle, name: string): Promise<File | null> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch (error) {
    if ((error as DOMException).name === 'NotFoundError') return null;
    throw error;
  }
}

/** Removes the run's folder; there may be none. */
async function remove(): Promise<void> {
  await (await navigator.storage.getDirectory()).removeEntry(FOLDER, { recursive: true }).catch(() => {});
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
      await remove();
      const dir = (await folder(true)) as FileSystemDirectoryHandle;
      for (const [i, f] of files.entries()) await write(dir, `data-${i}`, f.blob);
      // The folders the request carries (a reward model, the adapter it continues) are kept beside the data, their
      // file names in run.json.
      const saved: Record<string, unknown> = { ...request, files: files.map((f) => f.name) };
      for (const field of ATTACHED) {
        const attached = request[field];
        if (!attached || !('files' in attached)) continue;
        for (const [i, f] of attached.files.entries()) await write(dir, `${field}-${i}`, f.file);
        saved[field] = { ...attached, files: attached.files.map((f) => f.path) };
      }
      await write(dir, 'run.json', JSON.stringify(saved));
    },
    async saveCheckpoint(files, metrics, adapter) {
      const dir = await folder(true);
      if (!dir) return;
      for (const [name, content] of Object.entries(files)) await write(dir, name, content);
      await write(dir, 'metrics.jsonl', metrics.map((m) => JSON.stringify(m)).join('\n'));
      if (adapter) await keepAdapter(dir, adapter);
    },
    async saveAdapter(adapter) {
      const dir = await folder(false);
      if (dir) await keepAdapter(dir, adapter);
    },
    async end() {
      const dir = await folder(false);
      if (dir) await write(dir, 'ended', '');
    },
    async adapters() {
      const dir = await folder(false);
      const run = dir && (await read(dir, 'run.json'));
      if (!dir || !run) return null;
      return { request: JSON.parse(await run.text()), steps: await adapterSteps(dir), metrics: await readMetrics(dir) };
    },
    async loadAdapter(step) {
      const dir = await folder(false);
      const file = dir && (await read(dir, `${ADAPTER_PREFIX}${step}`));
      return file ? new Float32Array(await file.arrayBuffer()) : null;
    },
    async load() {
      const dir = await folder(false);
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
