/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { cachedFiles } from '../core/hub';
import type { EngineApi } from './engine/api';
import { acquireGpu } from './engine/gpu/device';
import { gpuReport } from './engine/gpu-report';
import { EngineSession } from './engine/session';
import { cacheStorageCache } from './storage/cache-storage';
import { opfsRunStore } from './storage/opfs-run-store';
import { opfsScratchFile } from './storage/opfs-scratch';

/** The engine's dedicated worker: GPU work and model downloads never run on the page's main thread. */
const cache = typeof caches === 'undefined' ? null : cacheStorageCache();
const tuning = typeof caches === 'undefined' ? null : cacheStorageCache('hone-tuning-v1');
const runs = typeof self.navigator.storage?.getDirectory === 'function' ? opfsRunStore() : null;
const scratch = runs ? opfsScratchFile : undefined;
const session = new EngineSession({ acquire: () => acquireGpu(self.navigator.gpu), cache, runs, tuning, scratch });

const api: EngineApi = {
  gpuReport: () => gpuReport(self.navigator.gpu),
  describeModel: (source, hub) => session.describe(source, hub),
  loadModel: (source, hub, onProgress, base) => session.load(source, hub, onProgress, base),
  onDeviceLost: async (listener) => session.onDeviceLost(listener),
  cacheEntries: async () => (cache ? cachedFiles(cache) : []),
  clearCache: async (prefix) => cache?.clear(prefix),
  startTraining: (request, files, onEvent) => session.startTraining(request, files, onEvent),
  timeRun: (request, files) => session.timeRun(request, files),
  pauseTraining: async () => session.pauseTraining(),
  resumeTraining: (onEvent) => session.resumeTraining(onEvent),
  stopTraining: () => session.stopTraining(),
  savedRun: () => session.savedRun(),
  resumeSavedRun: (onEvent) => session.resumeSavedRun(onEvent),
  discardSavedRun: () => session.discardSavedRun(),
  checkpoints: () => session.checkpoints(),
  listRuns: () => session.listRuns(),
  exportAdapter: (which) => session.exports.adapterZip(which),
  exportMerged: (which) => session.exports.mergedZip(which),
  ggufBytes: (request) => session.exports.ggufBytes(request),
  exportGguf: (request, onProgress) => session.exports.ggufZip(request, onProgress),
  publish: (request, hub, onProgress) => session.exports.publish(request, hub, onProgress),
  evaluate: (request, onProgress, other, onDownload) =>
    session.evaluate(request, { onProgress, other: other && session.modelReader(other.source, other.hub, onDownload) }),
  stopEvaluating: async () => session.stopEvaluating(),
  keptEvaluation: () => session.keptEvaluation(),
  importAdapter: (name, files) => session.importAdapter(name, files),
  generate: (request, onText) => session.generate(request, onText),
  stopGenerating: async () => session.stopGenerating(),
};

Comlink.expose(api);
