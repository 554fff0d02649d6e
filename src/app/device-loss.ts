import * as Comlink from 'comlink';
import { getEngine } from '../lib/engine';
import { useModel } from '../stores/model';

/** The model store hears when the engine's GPU device is lost, so no step offers a model that is gone. */
export function watchDeviceLoss(): void {
  void getEngine().onDeviceLost(Comlink.proxy((reason: string) => useModel.getState().markLost(reason)));
}
