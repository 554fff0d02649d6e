import { encodeDispatch, encodeTransfer, type Op } from './ops';

/** GPU time spent per kernel label, from timestamp queries. */
export interface KernelTime {
  label: string;
  dispatches: number;
  milliseconds: number;
}

const MAX_QUERIES = 4096;

/**
 * Runs `ops` once with every dispatch in its own timed compute pass (needs the `timestamp-query` feature) and
 * sums GPU time by kernel label, slowest first. One pass per dispatch adds overhead on some adapters, so this
 * is for finding where time goes, not for headline figures.
 */
export async function profileOps(device: GPUDevice, ops: readonly Op[]): Promise<KernelTime[]> {
  if (!device.features.has('timestamp-query')) throw new Error('this adapter has no timestamp-query feature');
  const totals = new Map<string, KernelTime>();
  const perSubmit = MAX_QUERIES / 2;
  let start = 0;
  while (start < ops.length) {
    const labels: string[] = [];
    const stamps = await timestamps(device, MAX_QUERIES, (encoder, querySet) => {
      for (; start < ops.length && labels.length < perSubmit; start++) {
        const op = ops[start];
        if (op.kind !== 'dispatch') {
          encodeTransfer(encoder, op);
        } else {
          const q = labels.length * 2;
          const pass = encoder.beginComputePass({
            timestampWrites: { querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
          });
          encodeDispatch(pass, op);
          pass.end();
          labels.push(op.label);
        }
      }
      return labels.length * 2;
    });
    labels.forEach((label, k) => {
      const entry = totals.get(label) ?? { label, dispatches: 0, milliseconds: 0 };
      entry.dispatches++;
      entry.milliseconds += Number(stamps[2 * k + 1] - stamps[2 * k]) / 1e6;
      totals.set(label, entry);
    });
  }
  return [...totals.values()].sort((a, b) => b.milliseconds - a.milliseconds);
}

/**
 * GPU seconds of `ops` (compute ops) recorded as a plan records them, in one compute pass with timestamps at its
 * start and end: the barriers between dependent dispatches count, as they do in a training step. Needs the
 * `timestamp-query` feature; browsers quantize the figure (Chrome to 100 µs), so time runs longer than that.
 */
export async function passSeconds(device: GPUDevice, ops: readonly Op[]): Promise<number> {
  const [start, end] = await timestamps(device, 2, (encoder, querySet) => {
    const pass = encoder.beginComputePass({
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    for (const op of ops) {
      if (op.kind !== 'dispatch') throw new Error(`passSeconds times dispatches, not a ${op.kind}`);
      encodeDispatch(pass, op);
    }
    pass.end();
    return 2;
  });
  return Number(end - start) / 1e9;
}

/**
 * The timestamps `record` writes into a query set of `count` (it returns how many it wrote, from the first),
 * after its commands are submitted and run.
 */
async function timestamps(
  device: GPUDevice,
  count: number,
  record: (encoder: GPUCommandEncoder, querySet: GPUQuerySet) => number,
): Promise<BigUint64Array> {
  const querySet = device.createQuerySet({ type: 'timestamp', count });
  const resolve = device.createBuffer({
    size: count * 8,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = device.createBuffer({ size: count * 8, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  try {
    const encoder = device.createCommandEncoder();
    const written = record(encoder, querySet);
    encoder.resolveQuerySet(querySet, 0, written, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, written * 8);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(read.getMappedRange().slice(0, written * 8));
    read.unmap();
    return stamps;
  } finally {
    for (const resource of [querySet, resolve, read]) resource.destroy();
  }
}
