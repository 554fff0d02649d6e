import * as Comlink from 'comlink';
import type { DataApi } from '../../workers/data/api';

let data: Comlink.Remote<DataApi> | undefined;

/** The page's data worker, started on first use. */
export function getDataWorker(): Comlink.Remote<DataApi> {
  if (!data) {
    const worker = new Worker(new URL('../../workers/data.worker.ts', import.meta.url), {
      type: 'module',
      name: 'hone-data',
    });
    data = Comlink.wrap<DataApi>(worker);
  }
  return data;
}
