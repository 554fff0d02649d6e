import { runSelfTest } from '../../workers/engine/self-test';
import { acquireNodeGpu } from '../node-gpu';

/** `hone gpu-info`: the adapter Hone would train on, as JSON, with a verified kernel run. */
export async function gpuInfo(args: string[]): Promise<number> {
  if (args.length > 0) throw new Error(`gpu-info takes no arguments (got ${args.join(' ')})`);
  const { device, summary } = await acquireNodeGpu();
  try {
    const selfTest = await runSelfTest(device);
    process.stdout.write(`${JSON.stringify({ adapter: summary, selfTest }, null, 2)}\n`);
    return selfTest.passed ? 0 : 1;
  } finally {
    device.destroy();
  }
}
