/**
 * The browser bench page's script (bundled by browser.ts): the same measurements as in Node, on the page's WebGPU
 * adapter. The driver calls `window.honeBench(options)` and gets the result back as JSON.
 */
import { acquireGpu } from '../../workers/engine/gpu/device';
import { type BenchOptions, type BenchResult, runBench } from './measure';

declare global {
  interface Window {
    honeBench(options: BenchOptions): Promise<BenchResult>;
  }
}

window.honeBench = async (options) => {
  const { device, summary } = await acquireGpu(navigator.gpu);
  try {
    // Progress goes to the console, which the driver forwards: a 30-layer run takes minutes on a CPU adapter.
    return await runBench(device, summary, `${navigator.hardwareConcurrency} logical cores`, options, (line) =>
      console.log(line),
    );
  } finally {
    device.destroy();
  }
};
