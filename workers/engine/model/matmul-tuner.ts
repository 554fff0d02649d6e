import { createStorageBuffer } from '../gpu/buffers';
import { type Op, releaseOps, submitOps } from '../gpu/ops';
import { passSeconds } from '../gpu/profile';
import {
  type LowRank,
  MatmulKernel,
  type MatmulShape,
  type MatmulVariant,
  type OperandMask,
  resolveMatmulShape,
} from '../kernels/matmul';
import { canSplitK, SplitKMatmul } from '../kernels/split-k';

/** A matmul variant without its layout; `splitK` cuts K into that many slices summed by a reduce pass. */
export type MatmulTile = Omit<MatmulVariant, 'transA' | 'transB'> & { splitK?: number };

/** One product of a plan, on its chosen variant, with or without a low-rank term or an operand mask. */
export interface MatmulProduct {
  ops(a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape, lowRank?: LowRank, mask?: OperandMask): Op[];
}

/**
 * Register blocks read straight from storage: what CPU adapters (SwiftShader, lavapipe) run fastest, where
 * caches stage the data. 8x8 per invocation won on both in this project's measurements; x·Wᵀ products read their
 * rows along K as vectors (a third faster on SwiftShader).
 */
export const CPU_MATMUL_TILE: MatmulTile = { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8, vectorK: true };

/** Candidates timed on hardware adapters: workgroup-memory tiles from 64x64 down to 32x32, and register blocks. */
export const GPU_MATMUL_CANDIDATES: MatmulTile[] = [
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 16, workgroupY: 16 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
  { tiled: true, tileM: 4, tileN: 8, workgroupX: 16, workgroupY: 8 },
  { tiled: true, tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
  { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
  { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
  // For few output tiles over a long K (LoRA's 16-wide products, 128-token projections): K in slices within
  // the workgroup, or split over workgroups whose partial sums a reduce pass adds.
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 4 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 4 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, splitK: 8 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 16, workgroupY: 16, splitK: 8 },
];

/**
 * A run of candidates is timed over copies in a row, doubled until the run lasts this long: browsers quantize
 * timestamps (Chrome to 100 µs, where a product at 128 tokens takes a few microseconds on a GPU), so shorter
 * runs would rank candidates by rounding.
 */
export const MIN_TIMED_SECONDS = 2e-3;
const MAX_COPIES = 2048;

/** Seconds one run of `ops` takes, from `measure` (seconds of a list of ops) over enough copies in a row. */
export async function secondsPerRun(ops: Op[], measure: (run: Op[]) => Promise<number>, copies = 8): Promise<number> {
  for (;;) {
    const seconds = await measure(Array.from({ length: copies }, () => ops).flat());
    if (seconds >= MIN_TIMED_SECONDS || copies >= MAX_COPIES) return seconds / copies;
    copies *= 2;
  }
}

/** What decides a matmul's speed: layout and sizes (offsets and strides do not change the work). */
function shapeKey(transA: boolean, transB: boolean, shape: MatmulShape, halfB: boolean): string {
  const layout = `${transA ? 't' : 'n'}${transB ? 't' : 'n'}${halfB ? ' f16' : ''}`;
  return `${layout} ${shape.M}x${shape.N}x${shape.K}x${shape.batch ?? 1}`;
}

/**
 * Picks the matmul variant for each product of a plan. Untuned, every product gets `fallback`; `tune` times the
 * candidates on every shape requested so far (on scratch buffers) and remembers the fastest per shape, so a
 * plan recorded again afterwards runs each product on its own best variant. Kernel choice is per adapter and per
 * shape: GPUs want workgroup-memory tiles, sized to give enough workgroups; CPU adapters want register blocks.
 */
export class MatmulTuner {
  private readonly chosen = new Map<string, MatmulTile>();
  private readonly requested = new Map<
    string,
    { transA: boolean; transB: boolean; shape: MatmulShape; halfB: boolean }
  >();
  private readonly kernels = new Map<string, MatmulKernel | SplitKMatmul>();
  /** Split-K partial sums; products run one after another, so one buffer serves all (a larger one replaces it). */
  private scratch: GPUBuffer | null = null;

  constructor(
    private readonly device: GPUDevice,
    readonly fallback: MatmulTile,
  ) {}

  /** This product on its chosen variant (the fallback until tuned). */
  productFor(transA: boolean, transB: boolean, shape: MatmulShape, halfB = false): MatmulProduct {
    const key = shapeKey(transA, transB, shape, halfB);
    if (!this.requested.has(key)) this.requested.set(key, { transA, transB, shape, halfB });
    return this.product(this.chosen.get(key) ?? this.fallback, transA, transB, halfB);
  }

  private product(tile: MatmulTile, transA: boolean, transB: boolean, halfB: boolean): MatmulProduct {
    const { splitK, ...rest } = tile;
    return {
      ops: (a, b, c, shape, lowRank, mask) => {
        const terms = {
          lowRank: Boolean(lowRank),
          maskedLowRank: Boolean(lowRank?.mask),
          maskedOperand: mask?.operand,
        };
        const variant: MatmulVariant = { ...rest, transA, transB, halfB, ...terms };
        // A split-K choice falls back to the plain kernel for products it cannot split.
        if (!splitK || !this.splits(shape, splitK)) return [this.kernel(variant, 0).op(a, b, c, shape, lowRank, mask)];
        const kernel = this.kernel(variant, splitK);
        return kernel.ops(a, b, c, shape, this.scratchOf(kernel.scratchBytes(shape)), lowRank, mask);
      },
    };
  }

  /**
   * Whether split-K can cut this product in `splitK` slices here: canSplitK, and partial sums that one binding can
   * hold on this device (the LM head's are splits × tokens × vocabulary floats, past the 128 MiB many adapters
   * allow).
   */
  private splits(shape: MatmulShape, splitK: number): boolean {
    const bytes = splitK * shape.M * shape.N * 4;
    return canSplitK(shape, splitK) && bytes <= this.device.limits.maxStorageBufferBindingSize;
  }

  private kernel(variant: MatmulVariant, splitK: 0): MatmulKernel;
  private kernel(variant: MatmulVariant, splitK: number): SplitKMatmul;
  private kernel(variant: MatmulVariant, splitK: number): MatmulKernel | SplitKMatmul {
    const key = JSON.stringify({ variant, splitK });
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = splitK ? new SplitKMatmul(this.device, variant, splitK) : new MatmulKernel(this.device, variant);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }

  private scratchOf(bytes: number): GPUBuffer {
    if (!this.scratch || this.scratch.size < bytes) {
      this.scratch = createStorageBuffer(this.device, bytes, 'split-K partial sums');
    }
    return this.scratch;
  }

  /** Times `candidates` on every requested shape not tuned yet; returns how many shapes it tuned. */
  async tune(candidates: MatmulTile[]): Promise<number> {
    let tuned = 0;
    for (const [key, { transA, transB, shape, halfB }] of this.requested) {
      if (this.chosen.has(key)) continue;
      const s = resolveMatmulShape({ M: shape.M, N: shape.N, K: shape.K, batch: shape.batch }, { transA, transB });
      const buffers = [s.M * s.K, s.K * s.N, s.M * s.N].map((n) => createStorageBuffer(this.device, n * s.batch * 4));
      let best: { tile: MatmulTile; seconds: number } | null = null;
      const plain = { M: s.M, N: s.N, K: s.K, batch: s.batch };
      for (const tile of candidates) {
        if (tile.splitK && !this.splits(plain, tile.splitK)) continue;
        const ops = this.product(tile, transA, transB, halfB).ops(buffers[0], buffers[1], buffers[2], plain);
        // One warm-up run (the pipelines' first use), then the timed runs.
        submitOps(this.device, ops);
        await this.device.queue.onSubmittedWorkDone();
        const seconds = await secondsPerRun(ops, (run) => this.time(run));
        releaseOps(ops);
        if (!best || seconds < best.seconds) best = { tile, seconds };
      }
      for (const buffer of buffers) buffer.destroy();
      if (best) this.chosen.set(key, best.tile);
      tuned++;
    }
    return tuned;
  }

  /**
   * Seconds the ops take: GPU time of one compute pass from timestamp queries where the adapter has them
   * (wall-clock time of a submit is mostly latency for products this small), else wall-clock.
   */
  private async time(ops: Op[]): Promise<number> {
    if (this.device.features.has('timestamp-query')) return passSeconds(this.device, ops);
    const started = performance.now();
    submitOps(this.device, ops);
    await this.device.queue.onSubmittedWorkDone();
    return (performance.now() - started) / 1000;
  }

  /**
   * Adopts variants chosen in an earlier session (by shape key), each only where it is one of `candidates`, so a
   * stale or edited file cannot bring in a kernel the adapter was never tuned with. Returns how many of the
   * shapes requested so far it settled; shapes requested later find their variant already chosen.
   */
  restore(saved: Record<string, MatmulTile>, candidates: MatmulTile[]): number {
    const known = new Map(candidates.map((tile) => [JSON.stringify(tile), tile]));
    let settled = 0;
    for (const [key, tile] of Object.entries(saved)) {
      const candidate = known.get(JSON.stringify(tile));
      if (!candidate || this.chosen.has(key)) continue;
      this.chosen.set(key, candidate);
      if (this.requested.has(key)) settled++;
    }
    return settled;
  }

  /** Every shape's chosen variant, to keep for later sessions. */
  tuned(): Record<string, MatmulTile> {
    return Object.fromEntries(this.chosen);
  }

  /** The variant chosen per shape, for reports. */
  choices(): { shape: string; tile: MatmulTile }[] {
    return [...this.requested.keys()].map((shape) => ({ shape, tile: this.chosen.get(shape) ?? this.fallback }));
  }
}
