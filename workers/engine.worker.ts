/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import type { EngineApi } from './engine/api';
import { gpuReport } from './engine/gpu-report';
import { EngineSession } from './engine/session';
import { cacheStorageCache } from './storage/cache-storage';

/** The engine's dedicated worker: GPU work and model downloads never run on the page's main thread. */
const cache = typeof caches === 'undefined' ? null : cacheStorageCache();
const session = new EngineSession(self.navigator.gpu, cache);

const api: EngineApi = {
  gpuReport: () => gpuReport(self.navigator.gpu),
  describeModel: (source, hub) => session.describe(source, hub),
  loadModel: (source, hub, onProgress) => session.load(source, hub, onProgress),
  cacheEntries: async () => (cache ? cache.entries() : []),
  clearCache: async (prefix) => cache?.clear(prefix),
};

Comlink.expose(api);
