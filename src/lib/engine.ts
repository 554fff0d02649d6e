import * as Comlink from 'comlink';
import type { EngineApi } from '../../workers/engine/api';

let engine: Comlink.Remote<EngineApi> | undefined;

/** The one engine worker of this page, started on first use. */
export function getEngine(): Comlink.Remote<EngineApi> {
  if (!engine) {
    const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), {
      type: 'module',
      name: 'hone-engine',
    });
    engine = Comlink.wrap<EngineApi>(worker);
  }
  return engine;
}
