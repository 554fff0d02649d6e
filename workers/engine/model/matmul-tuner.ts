import { createStorageBuffer } from '../gpu/buffers';
import { type Op, releaseOps, submitOps } from '../gpu/ops';
import { passSeconds } from '../gpu/profile';
import {
  bFormat,
  type MatmulExtras,
  MatmulKernel,
  type MatmulShape,
  type MatmulVariant,
  type MatrixFormat,
  quantOf,
  resolveMatmulShape,
} from '../kernels/matmul';
import { MatmulSetKernel, type SetProduct } from '../kernels/matmul-set';
import type { Slabs } from '../kernels/rmsnorm';
import { canSplitK, SplitKMatmul, SplitKReduce } from '../kernels/split-k';

/** A matmul variant without its layout; `splitK` cuts K into that many slices summed by a reduce pass. */
export type MatmulTile = Omit<MatmulVariant, 'transA' | 'transB'> & { splitK?: number };

/**
 * What a set of products (kernels/matmul-set.ts) runs as: one dispatch on a tiled variant (a sum's `splitK` cutting
 * each product's K into that many slices), or 'separate', each product on its own chosen variant.
 */
export type MatmulChoice = MatmulTile | 'separate';

/**
 * Products that read one input, each into its own output (the forward's q/k/v, gate/up: 'each'), or whose sum is
 * one output (their input gradient dx = Σ dyᵢ·Wᵢ: 'sum'). Shapes of a set share M; a sum's also N.
 */
export type SetForm = 'each' | 'sum';

/** The output of a sum of products: C (= alpha · Σ + beta · C) at offsetC, rows ldc apart. */
export type SumShape = Pick<MatmulShape, 'M' | 'N' | 'ldc' | 'offsetC' | 'alpha' | 'beta'>;

export interface MatmulSet {
  /** 'each': every product into its own C. */
  ops(products: SetProduct[]): Op[];
  /** 'sum': the products' sum into c (their own C unused). */
  sumOps(products: Omit<SetProduct, 'c'>[], c: GPUBuffer, shape: SumShape): Op[];
  /**
   * 'sum', unreduced: c's new value, beta · c + the products' sum, as c and `slabs` partial sums [slabs, M, N] in
   * `sum`, for the reader to add as it reads them (beta 0 or 1). Where no partial sums are needed (the products run
   * separately, or one product whole), the value itself in c: `sum` c and one slab for beta 0, none for beta 1.
   * The partial sums are split-K's shared scratch: read them before the next split-K product runs.
   */
  partialSums(
    products: Omit<SetProduct, 'c'>[],
    c: GPUBuffer,
    shape: Pick<MatmulShape, 'M' | 'N' | 'beta'>,
  ): Slabs & { ops: Op[] };
}

/** One product of a plan, on its chosen variant, with or without a low-rank term or an operand mask. */
export interface MatmulProduct {
  ops(a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape, extras?: MatmulExtras): Op[];
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

/** What decides a matmul's speed: layout, B's format and sizes (offsets and strides do not change the work). */
function shapeKey(transA: boolean, transB: boolean, shape: MatmulShape, format: MatrixFormat): string {
  const layout = `${transA ? 't' : 'n'}${transB ? 't' : 'n'}${format === 'f32' ? '' : ` ${format}`}`;
  return `${layout} ${shape.M}x${shape.N}x${shape.K}x${shape.batch ?? 1}`;
}

/** A set's key: its form, then its products' keys (no transposed A: sets carry LoRA's low-rank terms). */
function setKey(form: SetForm, transB: boolean, shapes: readonly MatmulShape[], format: MatrixFormat): string {
  return `${form} ${shapes.map((shape) => shapeKey(false, transB, shape, format)).join(' + ')}`;
}

/** The candidates a set may run as: tiled variants (split-K only for a sum, as slices of each K), or separately. */
function setCandidates(form: SetForm, candidates: readonly MatmulTile[]): MatmulChoice[] {
  const tiled = candidates.filter((tile) => tile.tiled && (form === 'sum' || !tile.splitK));
  return [...tiled, 'separate'];
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
    { transA: boolean; transB: boolean; shape: MatmulShape; format: MatrixFormat }
  >();
  private readonly kernels = new Map<string, MatmulKernel | SplitKMatmul>();
  private readonly setKernels = new Map<string, MatmulSetKernel>();
  /** A sum's reduce pass, by transB: plain, since each product's low-rank term rides on its first slice. */
  private readonly reduces = new Map<boolean, SplitKReduce>();
  private readonly chosenSets = new Map<string, MatmulChoice>();
  private readonly requestedSets = new Map<
    string,
    { form: SetForm; transB: boolean; shapes: MatmulShape[]; format: MatrixFormat }
  >();
  /** Split-K partial sums; products run one after another, so one buffer serves all (a larger one replaces it). */
  private scratch: GPUBuffer | null = null;

  /** `sets`: whether sets of products may run as one dispatch (KernelChoices.matmulSets); else separately. */
  constructor(
    private readonly device: GPUDevice,
    readonly fallback: MatmulTile,
    private readonly sets = false,
  ) {}

  /** This product on its chosen variant (the fallback until tuned), B stored in `format`. */
  productFor(transA: boolean, transB: boolean, shape: MatmulShape, format: MatrixFormat = 'f32'): MatmulProduct {
    const key = shapeKey(transA, transB, shape, format);
    if (!this.requested.has(key)) this.requested.set(key, { transA, transB, shape, format });
    return this.product(this.chosen.get(key) ?? this.fallback, transA, transB, format);
  }

  /**
   * Products of `form` (their shapes, in order, as their ops will be given) on the set's choice: untuned, one
   * dispatch where the fallback is tiled (GPUs), else separately; always separately where sets are off. Each product
   * is requested on its own too, so tuning can weigh running them separately. Quantized weights always run
   * separately (sets and split-K read B by the product's own shape).
   */
  setFor(form: SetForm, transB: boolean, shapes: MatmulShape[], format: MatrixFormat = 'f32'): MatmulSet {
    if (!this.sets || quantOf(format)) return this.set('separate', transB, format);
    const plain = shapes.map(({ M, N, K }) => ({ M, N, K }));
    for (const shape of plain) this.productFor(false, transB, shape, format);
    const key = setKey(form, transB, plain, format);
    if (!this.requestedSets.has(key)) this.requestedSets.set(key, { form, transB, shapes: plain, format });
    return this.set(this.chosenSets.get(key) ?? this.untunedSet(form), transB, format);
  }

  /**
   * A set's choice before tuning: one dispatch where the fallback is tiled (GPUs), else separately; a sum keeps
   * the fallback's split-K, as a product on its own would.
   */
  private untunedSet(form: SetForm): MatmulChoice {
    if (!this.fallback.tiled) return 'separate';
    const { splitK, ...tile } = this.fallback;
    return form === 'sum' && splitK ? { ...tile, splitK } : tile;
  }

  private set(choice: MatmulChoice, transB: boolean, format: MatrixFormat): MatmulSet {
    const separately = (products: SetProduct[]) =>
      products.flatMap((x) =>
        this.productFor(false, transB, x.shape, format).ops(x.a, x.b, x.c, x.shape, { lowRank: x.lowRank }),
      );
    const sumSeparately = (products: Omit<SetProduct, 'c'>[], c: GPUBuffer, shape: SumShape) =>
      separately(
        products.map((x, i) => ({
          ...x,
          c,
          shape: { ...x.shape, ...shape, beta: i === 0 ? (shape.beta ?? 0) : 1 },
        })),
      );
    // The sum's value in c itself, as partialSums gives it.
    const whole = (ops: Op[], c: GPUBuffer, shape: SumShape) => ({ ops, sum: c, slabs: shape.beta ? 0 : 1 });
    const unreduced = (products: Omit<SetProduct, 'c'>[], c: GPUBuffer, shape: SumShape) =>
      whole(sumSeparately(products, c, shape), c, shape);
    if (choice === 'separate') return { ops: separately, sumOps: sumSeparately, partialSums: unreduced };
    const { splitK, ...tile } = choice;
    const kernel = this.setKernel({ ...tile, transA: false, transB, ...bFormat(format) });
    const splits = splitK ?? 1;
    // The partial sums' scratch, or null where they would not fit a binding or the set's bindings would not fit.
    const scratchFor = (products: Omit<SetProduct, 'c'>[], c: GPUBuffer) => {
      const bytes = MatmulSetKernel.sumScratchBytes(products, splits);
      const fits =
        bytes <= this.device.limits.maxStorageBufferBindingSize && kernel.fits(products.map((x) => ({ ...x, c })));
      return fits ? this.scratchOf(bytes) : null;
    };
    // One product not cut in slices needs no partial sums: it goes into c whole.
    const direct = (products: Omit<SetProduct, 'c'>[], c: GPUBuffer, shape: SumShape) => {
      const [x] = products;
      const product = { ...x, c, shape: { ...x.shape, ...shape } };
      return products.length === 1 && splits === 1 && kernel.fits([product]) ? [kernel.op([product])] : null;
    };
    return {
      ops: (products) => (kernel.fits(products) ? [kernel.op(products)] : separately(products)),
      sumOps: (products, c, shape) => {
        const one = direct(products, c, shape);
        if (one) return one;
        const scratch = scratchFor(products, c);
        if (!scratch) return sumSeparately(products, c, shape);
        return kernel.sumOps(products, { c, shape, splits, scratch, reduce: this.reduceKernel(transB) });
      },
      partialSums: (products, c, shape) => {
        const one = direct(products, c, shape);
        if (one) return whole(one, c, shape);
        const scratch = scratchFor(products, c);
        if (!scratch) return unreduced(products, c, shape);
        const { op, slabs } = kernel.partialOp(products, { shape, splits, scratch });
        return { ops: [op], sum: scratch, slabs };
      },
    };
  }

  private setKernel(variant: MatmulVariant): MatmulSetKernel {
    const key = JSON.stringify(variant);
    let kernel = this.setKernels.get(key);
    if (!kernel) {
      kernel = new MatmulSetKernel(this.device, variant);
      this.setKernels.set(key, kernel);
    }
    return kernel;
  }

  private reduceKernel(transB: boolean): SplitKReduce {
    let kernel = this.reduces.get(transB);
    if (!kernel) {
      kernel = new SplitKReduce(this.device, { transB });
      this.reduces.set(transB, kernel);
    }
    return kernel;
  }

  private product(tile: MatmulTile, transA: boolean, transB: boolean, format: MatrixFormat): MatmulProduct {
    const { splitK, ...rest } = tile;
    return {
      ops: (a, b, c, shape, { lowRank, operandMask } = {}) => {
        const terms = {
          lowRank: Boolean(lowRank),
          maskedLowRank: Boolean(lowRank?.mask),
          maskedOperand: operandMask?.operand,
        };
        const variant: MatmulVariant = { ...rest, transA, transB, ...bFormat(format), ...terms };
        const extras = { lowRank, operandMask };
        // A split-K choice falls back to the plain kernel for products it cannot split (or quantized B).
        if (!splitK || variant.quantB || !this.splits(shape, splitK)) {
          return [this.kernel(variant, 0).op(a, b, c, shape, extras)];
        }
        const kernel = this.kernel(variant, splitK);
        return kernel.ops(a, b, c, shape, { ...extras, scratch: this.scratchOf(kernel.scratchBytes(shape)) });
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

  /**
   * Times `candidates` on every requested shape not tuned yet, then on every set (each set also run separately, on
   * its products' choices, which are tuned first); returns how many shapes and sets it tuned.
   */
  async tune(candidates: MatmulTile[]): Promise<number> {
    let tuned = 0;
    for (const [key, { transA, transB, shape, format }] of this.requested) {
      if (this.chosen.has(key)) continue;
      const s = resolveMatmulShape({ M: shape.M, N: shape.N, K: shape.K, batch: shape.batch }, { transA, transB });
      const buffers = [s.M * s.K, s.K * s.N, s.M * s.N].map((n) => createStorageBuffer(this.device, n * s.batch * 4));
      let best: { tile: MatmulTile; seconds: number } | null = null;
      const plain = { M: s.M, N: s.N, K: s.K, batch: s.batch };
      // A quantized B fits the fp32 scratch (fewer words); its products never split K.
      for (const tile of candidates) {
        if (tile.splitK && (quantOf(format) || !this.splits(plain, tile.splitK))) continue;
        const ops = this.product(tile, transA, transB, format).ops(buffers[0], buffers[1], buffers[2], plain);
        const seconds = await this.timeOps(ops);
        if (!best || seconds < best.seconds) best = { tile, seconds };
      }
      for (const buffer of buffers) buffer.destroy();
      if (best) this.chosen.set(key, best.tile);
      tuned++;
    }
    for (const [key, { form, transB, shapes, format }] of this.requestedSets) {
      if (this.chosenSets.has(key)) continue;
      const buffer = (floats: number) => createStorageBuffer(this.device, floats * 4);
      const { M, N, K } = shapes[0];
      // 'each': one input [M, K], each product's W and output; 'sum': each product's dy and W, one output [M, N].
      const shared = buffer(form === 'each' ? M * K : M * N);
      const products = shapes.map((shape) =>
        form === 'each'
          ? { a: shared, b: buffer(shape.N * shape.K), c: buffer(M * shape.N), shape }
          : { a: buffer(M * shape.K), b: buffer(shape.K * N), c: shared, shape },
      );
      let best: { choice: MatmulChoice; seconds: number } | null = null;
      for (const choice of setCandidates(form, candidates)) {
        const set = this.set(choice, transB, format);
        const ops = form === 'each' ? set.ops(products) : set.sumOps(products, shared, { M, N });
        const seconds = await this.timeOps(ops);
        if (!best || seconds < best.seconds) best = { choice, seconds };
      }
      for (const x of products) for (const b of new Set([x.a, x.b, x.c])) b.destroy();
      if (best) this.chosenSets.set(key, best.choice);
      tuned++;
    }
    return tuned;
  }

  /** Seconds one run of `ops` takes, after a warm-up run (the pipelines' first use); the ops are released. */
  private async timeOps(ops: Op[]): Promise<number> {
    submitOps(this.device, ops);
    await this.device.queue.onSubmittedWorkDone();
    const seconds = await secondsPerRun(ops, (run) => this.time(run));
    releaseOps(ops);
    return seconds;
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
  restore(saved: Record<string, MatmulChoice>, candidates: MatmulTile[]): number {
    const known = (choices: readonly MatmulChoice[]) =>
      new Map(choices.map((choice) => [JSON.stringify(choice), choice]));
    const products = known(candidates);
    const sets = { each: known(setCandidates('each', candidates)), sum: known(setCandidates('sum', candidates)) };
    let settled = 0;
    for (const [key, choice] of Object.entries(saved)) {
      const form = key.split(' ')[0];
      if (form === 'each' || form === 'sum') {
        const candidate = sets[form].get(JSON.stringify(choice));
        if (!candidate || this.chosenSets.has(key)) continue;
        this.chosenSets.set(key, candidate);
        if (this.requestedSets.has(key)) settled++;
        continue;
      }
      const candidate = products.get(JSON.stringify(choice));
      if (!candidate || candidate === 'separate' || this.chosen.has(key)) continue;
      this.chosen.set(key, candidate);
      if (this.requested.has(key)) settled++;
    }
    return settled;
  }

  /** Every shape's and set's choice, to keep for later sessions. */
  tuned(): Record<string, MatmulChoice> {
    return Object.fromEntries([...this.chosen, ...this.chosenSets]);
  }

  /** The variant chosen per shape, then per set, for reports. */
  choices(): { shape: string; tile: MatmulChoice }[] {
    return [
      ...[...this.requested.keys()].map((shape) => ({ shape, tile: this.chosen.get(shape) ?? this.fallback })),
      ...[...this.requestedSets].map(([shape, { form }]) => ({
        shape,
        tile: this.chosenSets.get(shape) ?? this.untunedSet(form),
      })),
    ];
  }
}
