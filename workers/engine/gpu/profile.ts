import type { Op } from './ops';

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
    const querySet = device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES });
    const resolve = device.createBuffer({
      size: MAX_QUERIES * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const read = device.createBuffer({
      size: MAX_QUERIES * 8,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    const encoder = device.createCommandEncoder();
    const labels: string[] = [];
    let i = start;
    for (; i < ops.length && labels.length < perSubmit; i++) {
      const op = ops[i];
      if (op.kind === 'copy') {
        encoder.copyBufferToBuffer(op.source, op.sourceOffset ?? 0, op.target, op.targetOffset ?? 0, op.byteLength);
      } else if (op.kind === 'clear') {
        encoder.clearBuffer(op.buffer);
      } else {
        const q = labels.length * 2;
        const pass = encoder.beginComputePass({
          timestampWrites: { querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
        });
        pass.setPipeline(op.pipeline);
        pass.setBindGroup(0, op.bindGroup);
        pass.dispatchWorkgroups(...op.workgroups);
        pass.end();
        labels.push(op.label);
      }
    }
    start = i;
    encoder.resolveQuerySet(querySet, 0, labels.length * 2, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, labels.length * 16);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const stamps = new BigUint64Array(read.getMappedRange().slice(0, labels.length * 16));
    read.unmap();
    labels.forEach((label, k) => {
      const entry = totals.get(label) ?? { label, dispatches: 0, milliseconds: 0 };
      entry.dispatches++;
      entry.milliseconds += Number(stamps[2 * k + 1] - stamps[2 * k]) / 1e6;
      totals.set(label, entry);
    });
    for (const resource of [querySet, resolve, read]) resource.destroy();
  }
  return [...totals.values()].sort((a, b) => b.milliseconds - a.milliseconds);
}

/**
 * GPU seconds of `ops` (compute ops) recorded as a plan records them, in one compute pass with timestamps at its
 * start and end: the barriers between dependent dispatches count, as they do in a training step. Needs the
 * `timestamp-query` feature; browsers quantize the figure (Chrome to 100 µs), so time runs longer than that.
 */
export async function passSeconds(device: GPUDevice, ops: readonly Op[]): Promise<number> {
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass({
    timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
  });
  for (const op of ops) {
    if (op.kind !== 'dispatch') throw new Error(`passSeconds times dispatches, not a ${op.kind}`);
    pass.setPipeline(op.pipeline);
    pass.setBindGroup(0, op.bindGroup);
    pass.dispatchWorkgroups(...op.workgroups);
  }
  pass.end();
  encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
  encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const [start, end] = new BigUint64Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const resource of [querySet, resolve, read]) resource.destroy();
  return Number(end - start) / 1e9;
}
