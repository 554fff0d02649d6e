/**
 * The engine records work as a list of ops once per shape (a "plan"), then replays it every step: no
 * allocation, no bind-group creation and no uniform writes on the hot path.
 */
export type Op =
  | {
      kind: 'dispatch';
      label: string;
      pipeline: GPUComputePipeline;
      bindGroup: GPUBindGroup;
      workgroups: [number, number, number];
      /** The op's own uniform buffer, freed with `releaseOps`. */
      uniforms?: GPUBuffer;
    }
  | {
      kind: 'copy';
      source: GPUBuffer;
      target: GPUBuffer;
      byteLength: number;
      sourceOffset?: number;
      targetOffset?: number;
    }
  | { kind: 'clear'; buffer: GPUBuffer };

/** Records a dispatch into a compute pass. */
export function encodeDispatch(pass: GPUComputePassEncoder, op: Extract<Op, { kind: 'dispatch' }>): void {
  pass.setPipeline(op.pipeline);
  pass.setBindGroup(0, op.bindGroup);
  pass.dispatchWorkgroups(...op.workgroups);
}

/** Records a copy or a clear, which run outside compute passes. */
export function encodeTransfer(encoder: GPUCommandEncoder, op: Exclude<Op, { kind: 'dispatch' }>): void {
  if (op.kind === 'copy') {
    encoder.copyBufferToBuffer(op.source, op.sourceOffset ?? 0, op.target, op.targetOffset ?? 0, op.byteLength);
  } else {
    encoder.clearBuffer(op.buffer);
  }
}

/** Records ops into `encoder`, grouping consecutive dispatches into one compute pass. */
export function encodeOps(encoder: GPUCommandEncoder, ops: readonly Op[]): void {
  let pass: GPUComputePassEncoder | null = null;
  for (const op of ops) {
    if (op.kind === 'dispatch') {
      pass ??= encoder.beginComputePass();
      encodeDispatch(pass, op);
      continue;
    }
    pass?.end();
    pass = null;
    encodeTransfer(encoder, op);
  }
  pass?.end();
}

/** Frees the uniform buffers recorded ops own (call when their plan is done with). */
export function releaseOps(ops: readonly Op[]): void {
  for (const op of ops) if (op.kind === 'dispatch') op.uniforms?.destroy();
}

/**
 * Ops per command buffer: a training step records over a thousand dispatches, and the GPU can run the first
 * command buffer while the CPU records (and the browser or Dawn translates) the next, rather than wait for all.
 */
const OPS_PER_SUBMIT = 256;

/** Submits ops in order, as command buffers of at most OPS_PER_SUBMIT ops. */
export function submitOps(device: GPUDevice, ops: readonly Op[]): void {
  for (let first = 0; first < Math.max(1, ops.length); first += OPS_PER_SUBMIT) {
    const encoder = device.createCommandEncoder();
    encodeOps(encoder, ops.slice(first, first + OPS_PER_SUBMIT));
    device.queue.submit([encoder.finish()]);
  }
}
