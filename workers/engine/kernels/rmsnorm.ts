import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { dropoutThreshold, MASKED_BY_MODULE_WGSL } from './dropout';
import { type RowLayout, rowKernel, uniformStruct } from './wgsl';

/**
 * RMSNorm over rows: y[r, :] = w · x[r, :] · rstd[r], rstd[r] = 1 / √(mean(x[r, :]²) + eps).
 *   x, y [rows, dim], w [dim], rstd [rows] (kept for the backward); Qwen3's per-head norm: rows = tokens · heads
 *   backward, xhat = x · rstd, g = dy · w:  dx (= or +=) rstd · (g - xhat · mean(g · xhat)),  dw += Σ_rows dy · xhat
 *   `carry`: x copied out as it is read (the residual stream; a copy of its own would end the compute pass)
 *   `accumulate`: y += w · x̂ (Gemma's norms of a block's output, added onto the residual stream)
 *   `xSlabs`, dy's slabs: inputs as partial sums [slabs, rows, dim], added as read (split-K's reduce pass spared)
 * A workgroup per row, or an invocation per row (`RowLayout`).
 */

const WG = 64;
/** LoRA modules whose x Aᵀ one forward writes: q/k/v. */
export const MAX_LORA_MODULES = 3;

// modules[i]: module i's A offset, x Aᵀ slot and dropout module (x, y, z).
const FORWARD_PARAMS = uniformStruct({
  rows: 'u32',
  dim: 'u32',
  eps: 'f32',
  slabs: 'u32',
  threshold: 'u32',
  maskScale: 'f32',
  modules: { vec4u: MAX_LORA_MODULES },
});
const BACKWARD_PARAMS = uniformStruct({
  rows: 'u32',
  dim: 'u32',
  accumulate: 'u32',
  slabs: 'u32',
  offsetB: 'u32',
  offsetOut: 'u32',
  scale: 'f32',
});
const WEIGHT_GRAD_PARAMS = uniformStruct({ rows: 'u32', dim: 'u32' });

/** What a forward kernel is compiled for: carrying x, adding partial sums to it, and LoRA's x Aᵀ of its output. */
interface ForwardForm {
  carry: boolean;
  slabs: boolean;
  accumulate: boolean;
  /** x Aᵀ of `modules` modules of this rank (0: none), read through their dropout masks where `masked`. */
  lora: { rank: number; modules: number; masked: boolean } | null;
}

function forwardShader(layout: RowLayout, form: ForwardForm): string {
  const k = rowKernel(layout);
  const { carry, slabs, lora, accumulate } = form;
  const extra = [
    ...(carry ? ['var<storage, read_write> carry: array<f32>'] : []),
    ...(slabs ? ['var<storage, read> xSlabs: array<f32>'] : []),
    ...(lora ? ['var<storage, read> A: array<f32>', 'var<storage, read_write> xa: array<f32>'] : []),
    ...(lora?.masked ? ['var<storage, read> maskState: array<u32>'] : []),
  ];
  // Module i's x Aᵀ: the row of y just written (through the module's mask) times A_i [rank, dim], into its slot.
  const epilogue = lora
    ? Array.from({ length: lora.modules }, (_, i) =>
        rowTimesMatrix(layout, lora.rank, {
          value: (j) => (lora.masked ? `masked(y[base + ${j}], base + ${j}, p.modules[${i}].z)` : `y[base + ${j}]`),
          weight: (t, j) => `A[p.modules[${i}].x + ${t} * p.dim + ${j}]`,
          store: (t, sum) => `xa[p.modules[${i}].y + row * ${lora.rank}u + ${t}] = ${sum};`,
        }),
      ).join('')
    : '';
  return /* wgsl */ `
${FORWARD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, ${slabs ? 'read_write' : 'read'}> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
${extra.map((decl, i) => `@group(0) @binding(${4 + i}) ${decl};`).join('\n')}
@group(0) @binding(${4 + extra.length}) var<uniform> p: Params;
${k.reduce}
${lora ? columnsDecl(layout) : ''}
${lora?.masked ? MASKED_BY_MODULE_WGSL : ''}
// x's element i, with the partial sums added to it.
fn xAt(i: u32) -> f32 {
  var sum = x[i];
  ${slabs ? 'for (var slab = 0u; slab < p.slabs; slab++) { sum += xSlabs[slab * p.rows * p.dim + i]; }' : ''}
  return sum;
}

@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var s = 0.0;
  for (var j = li; j < p.dim; j += ${k.stride}) {
    let v = xAt(base + j);
    s += v * v;${slabs ? '\n    x[base + j] = v;' : ''}${carry ? '\n    carry[base + j] = v;' : ''}
  }
  let r = inverseSqrt(reduce(s, li, false) / f32(p.dim) + p.eps);
  // Each invocation reads back only the elements it wrote above.
  for (var j = li; j < p.dim; j += ${k.stride}) { y[base + j] ${accumulate ? '+=' : '='} x[base + j] * r * w[j]; }
  if (li == 0u) { rstd[row] = r; }${epilogue}
}
`;
}

/** How many columns of a row-times-matrix epilogue the cooperative layout sums through workgroup memory at a time. */
const COLUMNS = 16;

/**
 * An epilogue multiplying the row just written by a matrix: for t < rank, `store(t, Σ_j value(j) · weight(t, j))`
 * over the row's dim elements. Each invocation reads back only the elements it wrote itself. The cooperative layout
 * has each invocation sum its stride of the row for COLUMNS columns at a time, then COLUMNS invocations add the
 * workgroup's sums, a column each (through `columns`, which the shader declares).
 */
function rowTimesMatrix(
  layout: RowLayout,
  rank: number,
  e: {
    value: (j: string) => string;
    weight: (t: string, j: string) => string;
    store: (t: string, sum: string) => string;
  },
): string {
  if (layout === 'row') {
    return /* wgsl */ `
  for (var t = 0u; t < ${rank}u; t++) {
    var sum = 0.0;
    for (var j = 0u; j < p.dim; j++) { sum += ${e.value('j')} * ${e.weight('t', 'j')}; }
    ${e.store('t', 'sum')}
  }`;
  }
  const size = rowKernel(layout).size;
  return /* wgsl */ `
  for (var t0 = 0u; t0 < ${rank}u; t0 += ${COLUMNS}u) {
    // Initialized here, not only declared: a declaration alone was not zeroed again each time round the loop.
    var acc = array<f32, ${COLUMNS}>();
    for (var j = li; j < p.dim; j += ${size}u) {
      let v = ${e.value('j')};
      for (var c = 0u; c < ${COLUMNS}u; c++) { acc[c] += v * ${e.weight(`min(t0 + c, ${rank - 1}u)`, 'j')}; }
    }
    for (var c = 0u; c < ${COLUMNS}u; c++) { columns[li * ${COLUMNS}u + c] = acc[c]; }
    workgroupBarrier();
    if (li < ${COLUMNS}u && t0 + li < ${rank}u) {
      var sum = 0.0;
      for (var i = 0u; i < ${size}u; i++) { sum += columns[i * ${COLUMNS}u + li]; }
      ${e.store('t0 + li', 'sum')}
    }
    workgroupBarrier();
  }`;
}

/** The workgroup memory rowTimesMatrix's cooperative layout sums through. */
const columnsDecl = (layout: RowLayout) =>
  layout === 'cooperative' ? `var<workgroup> columns: array<f32, ${rowKernel(layout).size * COLUMNS}>;` : '';

function backwardShader(layout: RowLayout, rank: number): string {
  const k = rowKernel(layout);
  const lowRank =
    rank > 0
      ? `@group(0) @binding(5) var<storage, read> B: array<f32>;
@group(0) @binding(6) var<storage, read_write> lowRank: array<f32>;
${columnsDecl(layout)}`
      : '';
  // The row of dx just written, times B [dim, rank], scaled, into its row of lowRank.
  const epilogue =
    rank > 0
      ? rowTimesMatrix(layout, rank, {
          value: (j) => `dx[base + ${j}]`,
          weight: (t, j) => `B[p.offsetB + ${j} * ${rank}u + ${t}]`,
          store: (t, sum) => `lowRank[p.offsetOut + row * ${rank}u + ${t}] = p.scale * ${sum};`,
        })
      : '';
  return /* wgsl */ `
${BACKWARD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${lowRank}
@group(0) @binding(${rank > 0 ? 7 : 5}) var<uniform> p: Params;
${k.reduce}
// dy's element i: the sum of its slabs.
fn dyAt(i: u32) -> f32 {
  var sum = dy[i];
  for (var slab = 1u; slab < p.slabs; slab++) { sum += dy[slab * p.rows * p.dim + i]; }
  return sum;
}

@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  let r = rstd[row];
  var s = 0.0;
  for (var j = li; j < p.dim; j += ${k.stride}) { s += dyAt(base + j) * w[j] * x[base + j] * r; }
  let meanGX = reduce(s, li, false) / f32(p.dim);
  for (var j = li; j < p.dim; j += ${k.stride}) {
    let xhat = x[base + j] * r;
    var value = r * (dyAt(base + j) * w[j] - xhat * meanGX);
    if (p.accumulate != 0u) { value += dx[base + j]; }
    dx[base + j] = value;
  }${epilogue}
}
`;
}

const weightGradShader = /* wgsl */ `
${WEIGHT_GRAD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rstd: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.dim) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.dim + j] * x[r * p.dim + j] * rstd[r]; }
  dw[j] += s;
}
`;

/** Partial sums [slabs, rows, dim] in `sum`, to be added to what they are read with. */
export interface Slabs {
  sum: GPUBuffer;
  slabs: number;
}

/**
 * A low-rank product of the backward's dx, written as it is produced: out [rows, rank] (at offsetOut) = scale ·
 * dx · B, B [dim, rank] at offsetB. A residual stream's gradient is the output gradient dy of the LoRA module that
 * added to it last (o_proj, down_proj), whose d(x Aᵀ) = s dy B this is, spared a dispatch of its own.
 */
export interface LowRankOut {
  b: GPUBuffer;
  offsetB: number;
  rank: number;
  scale: number;
  out: GPUBuffer;
  offsetOut: number;
}

/**
 * LoRA's x Aᵀ of the modules reading the forward's output y (q/k/v, or gate/up), written as y is produced:
 * xa [rows, rank] at each module's offsetOut = dropout(y) · Aᵀ, A [rank, dim] at its offsetA (in `a`), through
 * the module's own mask (kernels/dropout.ts, index y's element) where `mask` is given. The grouped matmul computing
 * it is spared its dispatch.
 */
export interface LowRankIn {
  a: GPUBuffer;
  rank: number;
  xa: GPUBuffer;
  modules: ReadonlyArray<{ offsetA: number; offsetOut: number; moduleId: number }>;
  mask?: { state: GPUBuffer; p: number };
}

/** y, rstd ← RMSNorm(x): x, y [rows, dim], w [dim], rstd [rows]. */
export interface RmsNormForward {
  x: GPUBuffer;
  w: GPUBuffer;
  y: GPUBuffer;
  rstd: GPUBuffer;
  rows: number;
  dim: number;
  eps: number;
  /** Where x is copied as it is read (the residual stream). */
  carry?: GPUBuffer;
  /** Partial sums added to x as it is read, and written back. */
  xSlabs?: Slabs;
  lowRankIn?: LowRankIn;
  /** y += rather than =. */
  accumulate?: boolean;
}

/** dx ← the RMSNorm's input gradient from dy, with the forward's x, w and rstd. */
export interface RmsNormBackward {
  x: GPUBuffer;
  w: GPUBuffer;
  rstd: GPUBuffer;
  dy: GPUBuffer;
  /** Partial sums dy is in (1: dy itself). */
  dySlabs?: number;
  dx: GPUBuffer;
  rows: number;
  dim: number;
  /** dx += rather than =. */
  accumulate?: boolean;
  lowRankOut?: LowRankOut;
}

/** dw ← Σ_rows dy · x · rstd. */
export interface RmsNormWeightGrad {
  x: GPUBuffer;
  rstd: GPUBuffer;
  dy: GPUBuffer;
  dw: GPUBuffer;
  rows: number;
  dim: number;
}

export class RmsNormKernels {
  /** Forward kernels, compiled on first use, by their WGSL (per `ForwardForm`). */
  private readonly forwards = new Map<string, Kernel>();
  /** Backward kernels, compiled on first use, by the rank of their low-rank output (0: none). */
  private readonly backwards = new Map<number, Kernel>();
  private readonly weightGrad: Kernel;
  private readonly grid: (rows: number) => [number, number, number];

  constructor(
    private readonly device: GPUDevice,
    private readonly layout: RowLayout = 'cooperative',
  ) {
    this.weightGrad = new Kernel(device, weightGradShader, 'rmsnorm_weight_grad');
    this.grid = rowKernel(layout).workgroups;
  }

  /**
   * y, rstd ← RMSNorm(x) [rows, dim]; with `carry`, x copied there too; with `xSlabs` (any but none), their sum
   * added to x first and written back; with `lowRankIn`, LoRA's x Aᵀ of y's modules as well.
   */
  forwardOp(o: RmsNormForward): Op {
    const { x, w, y, rstd, rows, dim, eps, carry } = o;
    const slabs = o.xSlabs && o.xSlabs.slabs > 0 ? o.xSlabs : undefined;
    const lora = o.lowRankIn;
    if (lora && (lora.modules.length === 0 || lora.modules.length > MAX_LORA_MODULES)) {
      throw new Error(`an RMSNorm writes x Aᵀ of 1 to ${MAX_LORA_MODULES} modules, not ${lora.modules.length}`);
    }
    if (lora && o.accumulate) throw new Error("an RMSNorm adding onto y cannot also write x Aᵀ of y's modules");
    const mask = lora?.mask;
    const uniforms = FORWARD_PARAMS.pack({
      rows,
      dim,
      eps,
      slabs: slabs?.slabs ?? 0,
      threshold: mask ? dropoutThreshold(mask.p) : 0,
      maskScale: mask ? 1 / (1 - mask.p) : 0,
      modules: (lora?.modules ?? []).flatMap((m) => [m.offsetA, m.offsetOut, m.moduleId, 0]),
    });
    const buffers = [
      ...[x, w, y, rstd],
      ...(carry ? [carry] : []),
      ...(slabs ? [slabs.sum] : []),
      ...(lora ? [lora.a, lora.xa] : []),
      ...(mask ? [mask.state] : []),
    ];
    const form: ForwardForm = {
      carry: Boolean(carry),
      slabs: Boolean(slabs),
      accumulate: Boolean(o.accumulate),
      lora: lora ? { rank: lora.rank, modules: lora.modules.length, masked: Boolean(mask) } : null,
    };
    return this.forwardKernel(form).op(buffers, uniforms, this.grid(rows));
  }

  private forwardKernel(form: ForwardForm): Kernel {
    const code = forwardShader(this.layout, form);
    let kernel = this.forwards.get(code);
    if (!kernel) {
      const parts = [form.carry && '_carry', form.slabs && '_slabs', form.lora && '_lora', form.accumulate && '_add'];
      const label = `rmsnorm_forward${parts.filter(Boolean).join('')}`;
      kernel = new Kernel(this.device, code, label);
      this.forwards.set(code, kernel);
    }
    return kernel;
  }

  /**
   * dx [rows, dim] = d(loss)/dx, written, or added to dx with `accumulate` (a residual stream's gradient); dy may
   * come as `dySlabs` partial sums [dySlabs, rows, dim], added as read. With `lowRankOut`, dx · B as well.
   */
  backwardOp(o: RmsNormBackward): Op {
    const { x, w, rstd, dy, dx, rows, dim, lowRankOut: lr } = o;
    const uniforms = BACKWARD_PARAMS.pack({
      rows,
      dim,
      accumulate: o.accumulate ? 1 : 0,
      slabs: o.dySlabs ?? 1,
      offsetB: lr?.offsetB ?? 0,
      offsetOut: lr?.offsetOut ?? 0,
      scale: lr?.scale ?? 0,
    });
    const buffers = [x, w, rstd, dy, dx, ...(lr ? [lr.b, lr.out] : [])];
    return this.backwardKernel(lr?.rank ?? 0).op(buffers, uniforms, this.grid(rows));
  }

  private backwardKernel(rank: number): Kernel {
    let kernel = this.backwards.get(rank);
    if (!kernel) {
      const label = rank > 0 ? 'rmsnorm_backward_low_rank' : 'rmsnorm_backward';
      kernel = new Kernel(this.device, backwardShader(this.layout, rank), label);
      this.backwards.set(rank, kernel);
    }
    return kernel;
  }

  /** dw [dim] += Σ_rows dy · xhat. */
  weightGradOp({ x, rstd, dy, dw, rows, dim }: RmsNormWeightGrad): Op {
    return this.weightGrad.op([x, rstd, dy, dw], WEIGHT_GRAD_PARAMS.pack({ rows, dim }), grid1d(dim, WG));
  }
}
