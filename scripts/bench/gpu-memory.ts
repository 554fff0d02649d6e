/**
 * GPU memory as the device sees it: every buffer created through `device.createBuffer`, attributed to the owner
 * named while it was created, live until destroyed. Wrapping the device, rather than adding up the engine objects'
 * `byteLength`s, also counts what they do not report (uniforms, split-K scratch, readback staging) and gives the
 * true peak, not a sum of parts that may never be live together.
 */

export interface MemoryReport {
  peakBytes: number;
  /** Live bytes of each owner at the moment of the peak. */
  atPeak: Record<string, number>;
}

export class GpuMemoryTracker {
  private owner = 'other';
  private readonly live = new Map<string, number>();
  private total = 0;
  private peak: MemoryReport = { peakBytes: 0, atPeak: {} };
  private readonly original: GPUDevice['createBuffer'];

  constructor(private readonly device: GPUDevice) {
    this.original = device.createBuffer;
    device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      const buffer = this.original.call(device, descriptor);
      const owner = this.owner;
      const destroy = buffer.destroy;
      let alive = true;
      buffer.destroy = () => {
        // Destroying twice is legal in WebGPU; count it once.
        if (alive) this.add(owner, -buffer.size);
        alive = false;
        destroy.call(buffer);
      };
      this.add(owner, buffer.size);
      return buffer;
    };
  }

  /** Runs `work`, attributing the buffers it creates to `owner` (until it settles). */
  async as<T>(owner: string, work: () => T | Promise<T>): Promise<T> {
    const before = this.owner;
    this.owner = owner;
    try {
      return await work();
    } finally {
      this.owner = before;
    }
  }

  report(): MemoryReport {
    return { peakBytes: this.peak.peakBytes, atPeak: { ...this.peak.atPeak } };
  }

  /** Gives the device its own createBuffer back. */
  stop(): void {
    this.device.createBuffer = this.original;
  }

  private add(owner: string, bytes: number): void {
    this.live.set(owner, (this.live.get(owner) ?? 0) + bytes);
    this.total += bytes;
    if (this.total > this.peak.peakBytes) {
      this.peak = { peakBytes: this.total, atPeak: Object.fromEntries([...this.live].filter(([, b]) => b > 0)) };
    }
  }
}
