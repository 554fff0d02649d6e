import { createStorageBuffer } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { MatmulKernel, type MatmulShape, type MatmulVariant, resolveMatmulShape } from '../kernels/matmul';

export type MatmulTile = Omit<MatmulVariant, 'transA' | 'transB'>;

/**
 * Register blocks read straight from storage: what CPU adapters (SwiftShader, lavapipe) run fastest, where
 * caches stage the data. 8x8 per invocation won on both in this project's measurements.
 */
export const CPU_MATMUL_TILE: MatmulTile = { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 };

/** Candidates timed on hardware adapters: workgroup-memory tiles from 64x64 down to 32x32, and register blocks. */
export const GPU_MATMUL_CANDIDATES: MatmulTile[] = [
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 16, workgroupY: 16 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
  { tiled: true, tileM: 4, tileN: 8, workgroupX: 16, workgroupY: 8 },
  { tiled: true, tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
  { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
  { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
];

/** What decides a matmul's speed: layout and sizes (offsets and strides do not change the work). */
function shapeKey(transA: boolean, transB: boolean, shape: MatmulShape): string {
  return `${transA ? 't' : 'n'}${transB ? 't' : 'n'} ${shape.M}x${shape.N}x${shape.K}x${shape.batch ?? 1}`;
}

/**
 * Picks the matmul variant for each product of a plan. Untuned, every product gets `fallback`; `tune` times the
 * candidates on every shape requested so far (on scratch buffers) and remembers the fastest per shape, so a
 * plan recorded again afterwards runs each product on its own best variant. Kernel choice is per adapter and per
 * shape: GPUs want workgroup-memory tiles, sized to give enough workgroups; CPU adapters want register blocks.
 */
export class MatmulTuner {
  private readonly chosen = new Map<string, MatmulTile>();
  private readonly requested = new Map<string, { transA: boolean; transB: boolean; shape: MatmulShape }>();
  private readonly kernels = new Map<string, MatmulKernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly fallback: MatmulTile,
  ) {}

  /** The compiled kernel for this product. */
  kernelFor(transA: boolean, transB: boolean, shape: MatmulShape): MatmulKernel {
    const key = shapeKey(transA, transB, shape);
    if (!this.requested.has(key)) this.requested.set(key, { transA, transB, shape });
    return this.kernel({ ...(this.chosen.get(key) ?? this.fallback), transA, transB });
  }

  private kernel(variant: MatmulVariant): MatmulKernel {
    const key = JSON.stringify(variant);
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = new MatmulKernel(this.device, variant);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }

  /** Times `candidates` on every requested shape not tuned yet; returns how many shapes it tuned. */
  async tune(candidates: MatmulTile[], repeats = 10): Promise<number> {
    let tuned = 0;
    for (const [key, { transA, transB, shape }] of this.requested) {
      if (this.chosen.has(key)) continue;
      const s = resolveMatmulShape({ M: shape.M, N: shape.N, K: shape.K, batch: shape.batch }, { transA, transB });
      const buffers = [s.M * s.K, s.K * s.N, s.M * s.N].map((n) => createStorageBuffer(this.device, n * s.batch * 4));
      let best: { tile: MatmulTile; seconds: number } | null = null;
      for (const tile of candidates) {
        const op = this.kernel({ ...tile, transA, transB }).op(buffers[0], buffers[1], buffers[2], {
          M: s.M,
          N: s.N,
          K: s.K,
          batch: s.batch,
        });
        const ops = Array(repeats).fill(op);
        submitOps(this.device, ops);
        await this.device.queue.onSubmittedWorkDone();
        const started = performance.now();
        submitOps(this.device, ops);
        await this.device.queue.onSubmittedWorkDone();
        const seconds = (performance.now() - started) / 1000;
        if (!best || seconds < best.seconds) best = { tile, seconds };
      }
      for (const buffer of buffers) buffer.destroy();
      if (best) this.chosen.set(key, best.tile);
      tuned++;
    }
    return tuned;
  }

  /** The variant chosen per shape, for reports. */
  choices(): { shape: string; tile: MatmulTile }[] {
    return [...this.requested.keys()].map((shape) => ({ shape, tile: this.chosen.get(shape) ?? this.fallback }));
  }
}
