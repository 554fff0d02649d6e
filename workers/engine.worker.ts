/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import type { EngineApi } from './engine/api';
import { gpuReport } from './engine/gpu-report';

/** The engine's dedicated worker: GPU work never runs on the page's main thread. */
const api: EngineApi = {
  gpuReport: () => gpuReport(self.navigator.gpu),
};

Comlink.expose(api);
