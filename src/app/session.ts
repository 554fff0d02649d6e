import * as Comlink from 'comlink';
import type { BasePrecision } from '../../core/base-precision';
import type { DatasetFormat, FieldMapping } from '../../core/dataset/formats';
import type { TrainSettings } from '../../core/training/settings';
import type { TokenSettings } from '../../workers/data/api';
import type { DownloadProgress, ModelSource, RewardChoice } from '../../workers/engine/api';
import { getDataWorker } from '../lib/data';
import { getEngine } from '../lib/engine';
import { useDataset } from '../stores/dataset';
import { hubSettings, useHubSettings } from '../stores/hub-settings';
import { useModel } from '../stores/model';
import { useRestore } from '../stores/restore';
import { STEPS, type StepId, useStudio } from '../stores/studio';
import { useTraining } from '../stores/training';

/**
 * The person's session across a reload or a closed tab: the step they were on, the model's source (a Hub repo or the
 * demo model: picked folders cannot be read again unasked), the dataset (its files copied into the origin private
 * file system, with the format, mapping and token settings chosen), the training settings and a reward rule. Saved
 * as they change, restored once when the page opens.
 */
const KEY = 'hone-session-v1';
const DATA_FOLDER = 'hone-session-data';

interface SavedSession {
  step: StepId;
  model: ModelSource | null;
  /** The base precision the model was loaded at (absent: its default). */
  base?: BasePrecision;
  dataset: {
    files: { name: string; type: string; lastModified: number }[];
    choice: { format?: DatasetFormat; mapping?: FieldMapping };
    settings: TokenSettings;
  } | null;
  settings: TrainSettings | null;
  /** A rule, or a reward model trained here: plain data (picked folders are not kept). */
  reward: Extract<RewardChoice, { kind: 'rule' | 'kept-run' }> | null;
}

function read(): SavedSession | null {
  try {
    const text = localStorage.getItem(KEY);
    return text ? (JSON.parse(text) as SavedSession) : null;
  } catch {
    return null;
  }
}

async function dataFolder(): Promise<FileSystemDirectoryHandle | null> {
  if (typeof navigator.storage?.getDirectory !== 'function') return null;
  return (await navigator.storage.getDirectory()).getDirectoryHandle(DATA_FOLDER, { create: true });
}

/** The files OPFS holds now (restored ones read from there, so they are not written again). */
let kept: File[] = [];

/** Copies the dataset's files into OPFS (`data-I`), replacing the ones kept before. */
async function keepFiles(files: File[]): Promise<void> {
  const dir = await dataFolder();
  if (!dir || files === kept) return;
  kept = files;
  const names: string[] = [];
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
  for (const name of names) await dir.removeEntry(name);
  for (const [i, file] of files.entries()) {
    const writable = await (await dir.getFileHandle(`data-${i}`, { create: true })).createWritable();
    await writable.write(file);
    await writable.close();
  }
}

async function keptFiles(saved: NonNullable<SavedSession['dataset']>): Promise<File[] | null> {
  const dir = await dataFolder();
  if (!dir) return null;
  const files: File[] = [];
  for (const [i, meta] of saved.files.entries()) {
    try {
      const blob = await (await dir.getFileHandle(`data-${i}`)).getFile();
      files.push(new File([blob], meta.name, { type: meta.type, lastModified: meta.lastModified }));
    } catch {
      return null;
    }
  }
  return files;
}

/** Nothing is saved while the saved session is being put back, so a half-restored page does not overwrite it. */
let restoring = false;
/** The saved session's model while it is not loaded (still loading, or failed): kept, and tried again. */
let pendingModel: ModelSource | null = null;
let pendingBase: BasePrecision | undefined;

function snapshot(): SavedSession {
  const { files, choice, settings: tokens } = useDataset.getState();
  const { source, loaded } = useModel.getState();
  const { settings, reward } = useTraining.getState();
  return {
    step: useStudio.getState().step,
    model: source ? (source.kind === 'files' ? null : source) : pendingModel,
    base: loaded?.base ?? pendingBase,
    dataset:
      files.length > 0
        ? {
            files: files.map((f) => ({ name: f.name, type: f.type, lastModified: f.lastModified })),
            choice,
            settings: tokens,
          }
        : null,
    settings,
    reward: reward?.kind === 'rule' || reward?.kind === 'kept-run' ? reward : null,
  };
}

/** Saves the session whenever what it holds changes; the dataset's files when they change. */
export function keepSession(): () => void {
  const save = () => {
    if (!restoring) localStorage.setItem(KEY, JSON.stringify(snapshot()));
  };
  const unsubscribe = [
    useStudio.subscribe(save),
    useModel.subscribe(save),
    useTraining.subscribe((s, before) => {
      if (s.settings !== before.settings || s.reward !== before.reward) save();
    }),
    useDataset.subscribe((s, before) => {
      if (s.files !== before.files) void keepFiles(s.files).catch(() => {});
      if (s.files !== before.files || s.choice !== before.choice || s.settings !== before.settings) save();
    }),
  ];
  return () => {
    for (const stop of unsubscribe) stop();
  };
}

/** Puts the saved session back: step, settings and dataset at once, the model loaded onto the GPU (cached). */
export async function restoreSession(): Promise<void> {
  const saved = read();
  if (!saved) return;
  restoring = true;
  try {
    await restoreState(saved);
  } finally {
    restoring = false;
  }
  pendingModel = saved.model;
  pendingBase = saved.base;
  if (saved.model) await loadModel(saved.model);
}

async function restoreState(saved: SavedSession): Promise<void> {
  if (STEPS.some((s) => s.id === saved.step)) useStudio.getState().goTo(saved.step);
  if (saved.settings) useTraining.getState().setSettings(saved.settings);
  if (saved.reward) useTraining.getState().setReward(saved.reward);
  if (saved.dataset) {
    const files = await keptFiles(saved.dataset);
    if (files) {
      kept = files;
      const dataset = useDataset.getState();
      dataset.setFiles(files);
      dataset.setChoice(saved.dataset.choice);
      dataset.setSettings(saved.dataset.settings);
      // Read now, whatever the step: the Train step needs the summary.
      const named = files.map((file) => ({ name: file.name, blob: file }));
      void getDataWorker()
        .load(named, saved.dataset.choice)
        .then((summary) => 'unusable' in summary || useDataset.getState().setSummary(summary))
        .catch(() => {});
    }
  }
}

/** Loads a model the session had, from the browser's cache (or the studio, for the demo model). */
async function loadModel(source: ModelSource): Promise<void> {
  const label = source.kind === 'hub' ? source.repo : source.name;
  useRestore.setState({ status: 'loading-model', model: label, progress: null, message: null });
  try {
    const hub = hubSettings(useHubSettings.getState());
    const onProgress = Comlink.proxy((progress: DownloadProgress) => useRestore.setState({ progress }));
    const loaded = await getEngine().loadModel(source, hub, onProgress, pendingBase);
    pendingModel = null;
    useModel.getState().setLoaded(loaded, source);
    useRestore.setState({ status: 'done', progress: null });
  } catch (error) {
    useRestore.setState({ status: 'failed', progress: null, message: (error as Error).message });
  }
}

/** Tries the saved session's model again (after the Hub came back, or the settings changed). */
export async function retryModel(): Promise<void> {
  if (pendingModel) await loadModel(pendingModel);
}
