import type { RunStore } from '../engine/train/training-session';

/**
 * The browser's run store: one folder in the origin private file system holding the current run's request, a copy
 * of its dataset files (so a reload can resume without asking for them again), its latest checkpoint and metrics.
 * It lives in this browser profile only and is replaced when a new run starts.
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

export function opfsRunStore(): RunStore {
  return {
    async begin(request, files) {
      await remove();
      const dir = (await folder(true)) as FileSystemDirectoryHandle;
      for (const [i, f] of files.entries()) await write(dir, `data-${i}`, f.blob);
      // A reward model's folder is kept beside the data, its file names in run.json.
      const { reward } = request;
      const rewardFiles = reward && 'files' in reward ? reward.files : [];
      for (const [i, f] of rewardFiles.entries()) await write(dir, `reward-${i}`, f.file);
      const saved = reward && 'files' in reward ? { ...reward, files: rewardFiles.map((f) => f.path) } : reward;
      await write(dir, 'run.json', JSON.stringify({ ...request, reward: saved, files: files.map((f) => f.name) }));
    },
    async saveCheckpoint(files, metrics) {
      const dir = await folder(true);
      if (!dir) return;
      for (const [name, content] of Object.entries(files)) await write(dir, name, content);
      await write(dir, 'metrics.jsonl', metrics.map((m) => JSON.stringify(m)).join('\n'));
    },
    async load() {
      const dir = await folder(false);
      if (!dir) return null;
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
      if (request.reward && 'files' in request.reward) {
        const rewardFiles = [];
        for (const [i, path] of (request.reward.files as string[]).entries()) {
          const file = await read(dir, `reward-${i}`);
          if (!file) return null;
          rewardFiles.push({ path, file });
        }
        request.reward.files = rewardFiles;
      }
      const metricsFile = await read(dir, 'metrics.jsonl');
      const metrics = metricsFile
        ? (await metricsFile.text())
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [];
      return {
        request,
        files,
        checkpoint: { json: await trainer.text(), tensors: new Uint8Array(await optimizer.arrayBuffer()) },
        metrics,
      };
    },
    clear: remove,
  };
}
