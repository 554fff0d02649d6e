import { runSelfTest } from '../../workers/engine/self-test';
import type { Command } from '../command';
import { acquireNodeGpu } from '../node-gpu';

/** `hone gpu-info`: the adapter Hone would train on, as JSON, with a verified kernel run. */
export const gpuInfo: Command = {
  usage: 'hone gpu-info',
  summary: 'The WebGPU adapter Hone would train on, as JSON, with a kernel run on it and checked.',
  flags: {},
  async run() {
    const { device, summary } = await acquireNodeGpu();
    try {
      const selfTest = await runSelfTest(device);
      process.stdout.write(`${JSON.stringify({ adapter: summary, selfTest }, null, 2)}\n`);
      return selfTest.passed ? 0 : 1;
    } finally {
      device.destroy();
    }
  },
};
