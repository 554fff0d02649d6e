/**
 * A run's results taken out of the engine: its adapter (this run's, as trained so far, or a kept checkpoint's) as
 * PEFT files, the tuned model in the Hugging Face layout or as GGUF, zipped for the Export step, as files for
 * `hone train`, or published to a Hub repo.
 */
import type { Checkpoint, ReadFile } from '../../core/checkpoint';
import type { AdapterExport } from '../../core/export/adapter-folder';
import { baseModelId, exportName } from '../../core/export/base-model-id';
import { type GgufProgress, ggufChunks, ggufLayout } from '../../core/export/gguf';
import { elementCount, modelFolderFiles } from '../../core/export/merge';
import type { CardEvaluation } from '../../core/export/model-card';
import { zipFolder } from '../../core/export/zip';
import { type PublishProgress, type PublishResult, publishToHub } from '../../core/hub-publish';
import { minimalModelCard } from '../../core/hub-publish-card';
import type { Download, KeptCheckpoint } from './api';
import type { EvalReport } from './evaluate';
import { adapterExport, adapterFiles, FULL_RUN_HAS_NO_ADAPTER, mergedFiles } from './export';
import {
  checkZippable,
  type GgufChoice,
  type GgufTuned,
  ggufPlan,
  modelfileFor,
  type NamedPlan,
  writeGgufZip,
} from './gguf-export';
import type { HubSettings } from './model-loader';
import type { MetricRecord, ModelOnGpu, TrainingSession, TrainRequest } from './train/training-session';

/** What exports read from the engine session: the loaded model, its run, the kept runs' adapters, the device. */
export interface ExportSource {
  /** The loaded model and where its files are read from again; throws when none is loaded. */
  present(): { label: string; checkpoint: Checkpoint; read: ReadFile; model: ModelOnGpu | null };
  training(): TrainingSession | null;
  keptAdapter(
    label: string,
    which: KeptCheckpoint,
  ): Promise<{ request: TrainRequest; metrics: MetricRecord[]; params: Float32Array }>;
  device(): Promise<GPUDevice>;
  /** The evaluation kept with the latest run, for the model card. */
  evaluation(): Promise<EvalReport | null>;
  /** Where a large file is written piece by piece (an OPFS file in the browser); in memory when left out. */
  scratch?: (name: string) => Promise<ScratchFile>;
}

export interface ScratchFile {
  write(chunk: Uint8Array): Promise<void>;
  /** The file as written (disk-backed where it came from OPFS). */
  close(): Promise<Blob>;
  /** Lets a file go unfinished (a failed export): nothing is kept of it. */
  abort(): Promise<void>;
}

function memoryFile(): ScratchFile {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  return {
    write: async (chunk) => void parts.push(chunk as Uint8Array<ArrayBuffer>),
    close: async () => new Blob(parts),
    abort: async () => void parts.splice(0),
  };
}

/** The file `fill` writes, closed; aborted, and the error passed on, when filling it fails. */
async function written(file: ScratchFile, fill: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>) {
  try {
    await fill((chunk) => file.write(chunk));
  } catch (error) {
    await file.abort().catch(() => {});
    throw error;
  }
  return file.close();
}

export type Which = 'run' | KeptCheckpoint;

/** A GGUF of this run (or a kept checkpoint), or of the base model. */
export interface GgufRequest extends GgufChoice {
  which: Which;
}

/** What to publish (the adapter's PEFT folder, the tuned model in the Hugging Face layout, a GGUF), and where. */
export type PublishRequest = {
  which: Which;
  /** `org/name`, or a name alone for the token's own account. */
  repo: string;
  private: boolean;
} & ({ what: 'adapter' | 'merged' } | { what: 'gguf'; gguf: GgufChoice });

/** A run that trained every weight: its name, and its weights read from the GPU. */
interface FullRun {
  name: string;
  weight: (key: string) => Promise<Float32Array>;
}

export class RunExports {
  constructor(private readonly source: ExportSource) {}

  /** The adapter of this run (as trained so far) or of a kept checkpoint, split into its modules. */
  async trainedAdapter(which: Which): Promise<AdapterExport> {
    const { model } = this.source.present();
    if (!model) throw new Error('The loaded model has no tokenizer, so it has no runs.');
    if (which !== 'run') {
      const kept = await this.source.keptAdapter(model.label, which);
      const metrics = kept.metrics.filter((m) => m.step <= which.step);
      return adapterExport(model, { ...kept, settings: kept.request.settings, metrics, step: which.step, data: null });
    }
    const training = this.source.training();
    const trainer = training?.current;
    if (!training || !trainer) throw new Error('There is no trained adapter yet: train one in the Train step.');
    const params = await trainer.readAdapter();
    if (!params) throw new Error(FULL_RUN_HAS_NO_ADAPTER);
    const prepared = training.data;
    const data = prepared && {
      files: training.files,
      format: prepared.format,
      train: prepared.train,
      validation: prepared.validation,
      unit: prepared.unit,
    };
    const step = trainer.stepsCompleted;
    const exported = adapterExport(model, {
      settings: trainer.settings,
      params,
      metrics: training.recorded,
      step,
      data,
    });
    return { ...exported, evaluation: cardEvaluation(await this.source.evaluation()) };
  }

  /** This run's trained weights when it trains every weight (no adapter); null otherwise. */
  private async fullRun(which: Which): Promise<FullRun | null> {
    const training = this.source.training();
    const trainer = which === 'run' ? training?.current : null;
    const weights = training?.weights;
    if (!trainer || trainer.lora || !weights) return null;
    const device = await this.source.device();
    const { label, checkpoint } = this.source.present();
    return {
      name: exportName(label, trainer.settings.method, `step${trainer.stepsCompleted}`),
      weight: (key) => weights.read(device, key, elementCount(checkpoint, key)),
    };
  }

  /**
   * The run's result as a folder's files, named: its adapter (PEFT's files, model card, metrics), or for a run
   * that trains every weight, the model itself (float32).
   */
  async runFiles(which: Which): Promise<{ name: string; files: Map<string, Blob | Uint8Array> }> {
    const full = await this.fullRun(which);
    return full ? this.fullModelFolder(full) : this.adapterFolder(which);
  }

  private async fullModelFolder(full: FullRun): Promise<{ name: string; files: Map<string, Blob> }> {
    const { checkpoint, read } = this.source.present();
    return { name: full.name, files: await modelFolderFiles(checkpoint, read, full.weight, 'F32') };
  }

  /** The adapter's folder: PEFT's files, its model card and metrics. */
  private async adapterFolder(which: Which): Promise<{ name: string; files: Map<string, Uint8Array> }> {
    const adapter = await this.trainedAdapter(which);
    return { name: adapter.name, files: adapterFiles(adapter) };
  }

  /** The tuned model's folder: the adapter folded into the base's weights, or a full run's weights. */
  private async mergedFolder(which: Which): Promise<{ name: string; files: Map<string, Blob> }> {
    const full = await this.fullRun(which);
    if (full) return this.fullModelFolder(full);
    const adapter = await this.trainedAdapter(which);
    return { name: `${adapter.name}-merged`, files: await mergedFiles(this.source.present(), adapter) };
  }

  /** The run's weights for a GGUF: its adapter, or a full run's trained weights; null for the base model. */
  private async tuned(which: Which, choice: GgufChoice): Promise<GgufTuned | null> {
    if (choice.kind === 'base') return null;
    const full = await this.fullRun(which);
    return full ? { trained: full.weight, name: full.name } : { adapter: await this.trainedAdapter(which) };
  }

  private async ggufPlan(request: GgufRequest): Promise<NamedPlan> {
    return ggufPlan(this.source.present(), await this.tuned(request.which, request), request);
  }

  /** The GGUF's size in bytes, worked out from shapes and types before anything is written. */
  async ggufBytes(request: GgufRequest): Promise<number> {
    return ggufLayout((await this.ggufPlan(request)).plan).totalBytes;
  }

  /** The GGUF with its Ollama Modelfile and a README, as a zip written piece by piece to a scratch file. */
  async ggufZip(request: GgufRequest, onProgress?: (p: GgufProgress) => void): Promise<Download> {
    const named = await this.ggufPlan(request);
    checkZippable(named, ggufLayout(named.plan).totalBytes);
    const { read } = this.source.present();
    let files: string[] = [];
    const zip = await written(await this.scratchFile(`${named.name}.zip`), async (sink) => {
      files = await writeGgufZip(named, read, { sink, onProgress });
    });
    return { fileName: `${named.name}.zip`, zip, files };
  }

  private scratchFile(name: string): Promise<ScratchFile> {
    return this.source.scratch ? this.source.scratch(name) : Promise.resolve(memoryFile());
  }

  /** The files a publish sends, by their paths in the repo, each kind with a model card. */
  private async publishedFiles(request: PublishRequest, onProgress?: (p: GgufProgress) => void) {
    const base = this.source.present();
    if (request.what === 'gguf') {
      const named = await ggufPlan(base, await this.tuned(request.which, request.gguf), request.gguf);
      const gguf = await written(await this.scratchFile(`${named.name}.gguf`), async (write) => {
        for await (const chunk of ggufChunks(named.plan, { onProgress })) await write(chunk);
      });
      const files = new Map<string, Blob>([
        [`${named.name}.gguf`, gguf],
        ['Modelfile', new Blob([await modelfileFor(base.read, named)])],
      ]);
      files.set(
        'README.md',
        new Blob([minimalModelCard({ kind: 'gguf', title: named.name, files: [...files.keys()] })]),
      );
      return files;
    }
    const { files } =
      request.what === 'adapter' ? await this.adapterFolder(request.which) : await this.mergedFolder(request.which);
    const blobs = new Map(
      [...files].map(([name, content]) => [
        name,
        content instanceof Blob ? content : new Blob([content as Uint8Array<ArrayBuffer>]),
      ]),
    );
    if (!blobs.has('README.md')) {
      const baseModel = base.label.startsWith('hub:') ? baseModelId(base.label) : undefined;
      const card = minimalModelCard({
        kind: 'model',
        title: request.repo.split('/').at(-1) ?? request.repo,
        files: [...blobs.keys()],
        baseModel,
      });
      blobs.set('README.md', new Blob([card]));
    }
    return blobs;
  }

  /**
   * Publishes the run's adapter, tuned model or GGUF to a Hub repo (created when it does not exist), with the
   * token and Hub of the settings; `onProgress` hears the GGUF being written, then the upload.
   */
  async publish(
    request: PublishRequest,
    hub: HubSettings,
    onProgress: (p: { gguf?: GgufProgress; upload?: PublishProgress }) => void = () => {},
  ): Promise<PublishResult> {
    const files = await this.publishedFiles(request, (gguf) => onProgress({ gguf }));
    return publishToHub({
      repo: request.repo,
      private: request.private,
      token: hub.token,
      hubUrl: hub.baseUrl,
      files,
      onProgress: (upload) => onProgress({ upload }),
    });
  }

  /** The adapter as a zip to download: the PEFT folder, its model card and metrics. */
  async adapterZip(which: Which): Promise<Download> {
    const { name, files } = await this.adapterFolder(which);
    return download(name, files);
  }

  /**
   * The tuned model as a zip of a model folder in the Hugging Face layout: the adapter folded into the loaded
   * model's weights, or, for a run that trained every weight, those weights (float32).
   */
  async mergedZip(which: Which): Promise<Download> {
    const { name, files } = await this.mergedFolder(which);
    return download(name, files);
  }
}

/** An evaluation's summary as the model card shows it. */
function cardEvaluation(report: EvalReport | null): CardEvaluation | null {
  if (!report || report.rows.length === 0) return null;
  return {
    examples: report.rows.length,
    contestants: report.contestants.map((c) => c.name),
    metrics: report.metrics.map((name) => ({
      name,
      scores: report.contestants.map((c) => {
        const s = report.summary.find((x) => x.contestant === c.name && x.metric === name);
        return { mean: s?.mean ?? Number.NaN, low: s?.low ?? Number.NaN, high: s?.high ?? Number.NaN };
      }),
    })),
  };
}

async function download(name: string, files: Map<string, Blob | Uint8Array>): Promise<Download> {
  return { fileName: `${name}.zip`, zip: await zipFolder(name, files), files: [...files.keys()] };
}
