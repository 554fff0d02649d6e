/**
 * A run's results taken out of the engine: its adapter (this run's, as trained so far, or a kept checkpoint's) as
 * PEFT files, the tuned model in the Hugging Face layout, zipped for the Export step or as files for `hone train`.
 */
import type { Checkpoint, ReadFile } from '../../core/checkpoint';
import type { AdapterExport } from '../../core/export/adapter-folder';
import { exportName } from '../../core/export/base-model-id';
import { zipFolder } from '../../core/export/zip';
import type { Download, KeptCheckpoint } from './api';
import { adapterExport, adapterFiles, FULL_RUN_HAS_NO_ADAPTER, mergedFiles, trainedModelFiles } from './export';
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
}

export type Which = 'run' | KeptCheckpoint;

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
    return adapterExport(model, { settings: trainer.settings, params, metrics: training.recorded, step, data });
  }

  /**
   * The run's result as a folder's files, named: its adapter (PEFT's files, model card, metrics), or for a run
   * that trains every weight, the model itself (float32).
   */
  async runFiles(which: Which): Promise<{ name: string; files: Map<string, Blob | Uint8Array> }> {
    const training = this.source.training();
    const trainer = which === 'run' ? training?.current : null;
    const weights = training?.weights;
    if (trainer && !trainer.lora && weights) {
      const base = this.source.present();
      const files = await trainedModelFiles(await this.source.device(), base, weights);
      return { name: exportName(base.label, trainer.settings.method, `step${trainer.stepsCompleted}`), files };
    }
    const adapter = await this.trainedAdapter(which);
    return { name: adapter.name, files: adapterFiles(adapter) };
  }

  /** The adapter as a zip to download: the PEFT folder, its model card and metrics. */
  async adapterZip(which: Which): Promise<Download> {
    const adapter = await this.trainedAdapter(which);
    return download(adapter.name, adapterFiles(adapter));
  }

  /**
   * The tuned model as a zip of a model folder in the Hugging Face layout: the adapter folded into the loaded
   * model's weights, or, for a run that trained every weight, those weights (float32).
   */
  async mergedZip(which: Which): Promise<Download> {
    const trainer = which === 'run' ? this.source.training()?.current : null;
    if (trainer && !trainer.lora) {
      const { name, files } = await this.runFiles(which);
      return download(name, files);
    }
    const adapter = await this.trainedAdapter(which);
    return download(`${adapter.name}-merged`, await mergedFiles(this.source.present(), adapter));
  }
}

async function download(name: string, files: Map<string, Blob | Uint8Array>): Promise<Download> {
  return { fileName: `${name}.zip`, zip: await zipFolder(name, files), files: [...files.keys()] };
}
