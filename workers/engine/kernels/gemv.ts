import { f32, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import type { LowRank } from './matmul';
import { type RowLayout, workgroupReduce } from './wgsl';

/**
 * Matrix-vector product for decoding one token: y = alpha * W · x + beta * y, with W stored [N, K] row-major
 * (a linear layer's weight, or a LoRA matrix), x [K], y [N]; the matmul kernel's x · W^T for M = 1.
 *   x at offsetA, W at offsetB (elements), y at offsetC.
 * Batch-1 decoding reads every weight once per token, so this is about memory bandwidth. Two layouts, chosen per
 * adapter (`RowLayout`):
 *   - 'cooperative' (GPUs): each workgroup owns ROWS outputs and its invocations stride along K together, so
 *     consecutive invocations read consecutive words of a row, then reduce through workgroup memory; the tiled
 *     matmul would leave most of a 64-row tile idle and the GPU nearly empty.
 *   - 'row' (CPU adapters): each invocation owns one output and walks its row alone, with no workgroup memory and
 *     no barriers, which software adapters run as costly switches between invocations; a CPU core streams a
 *     row through its cache just as well alone.
 * W may be fp16, two values per 32-bit word (unpack2x16float, core WGSL); accumulation is fp32.
 * With a low-rank term (matmul.ts's `LowRank`: L [rank] = x A^T, R [N, rank] = B), each output also gets
 * scale · R[n] · L, LoRA's second product fused in: y = alpha (W x + s B (A x)) + beta y, one dispatch fewer per
 * adapted projection and token.
 */
const WG = 64;
const ROWS = 4;

/** What a gemv kernel is compiled for: W's precision and whether it binds a low-rank term. */
interface GemvVariant {
  halfW: boolean;
  lowRank: boolean;
}

/**
 * Every gemv kernel's parameters and bindings: x and W read as scalars (W's fp16 pairs as u32), or as vectors; and
 * `lowRank(n)`, output n's low-rank term (0 without one).
 */
function bindings({ halfW, lowRank }: GemvVariant, vectors: boolean): string {
  const w = vectors ? (halfW ? 'vec4<u32>' : 'vec4f') : halfW ? 'u32' : 'f32';
  return /* wgsl */ `
struct Params {
  N: u32, K: u32, offsetA: u32, offsetB: u32, offsetC: u32, alpha: f32, beta: f32, _p0: u32,
  rank: u32, offsetL: u32, offsetR: u32, scaleL: f32,
}
@group(0) @binding(0) var<storage, read> x: array<${vectors ? 'vec4f' : 'f32'}>;
@group(0) @binding(1) var<storage, read> W: array<${w}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${
  lowRank
    ? `@group(0) @binding(3) var<storage, read> L: array<f32>;
@group(0) @binding(4) var<storage, read> R: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn lowRank(n: u32) -> f32 {
  var s = 0.0;
  for (var t = 0u; t < p.rank; t++) { s += L[p.offsetL + t] * R[p.offsetR + n * p.rank + t]; }
  return p.scaleL * s;
}`
    : `@group(0) @binding(3) var<uniform> p: Params;

fn lowRank(n: u32) -> f32 { return 0.0; }`
}`;
}

function cooperativeShader(v: GemvVariant): string {
  const { halfW } = v;
  return /* wgsl */ `
${bindings(v, false)}
${workgroupReduce(WG)}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let first = (wg.x + wg.y * nwg.x) * ${ROWS}u;
  var acc: array<f32, ${ROWS}>;
  for (var r = 0u; r < ${ROWS}u; r++) {
    let n = min(first + r, p.N - 1u);
    let row = p.offsetB + n * p.K;
    var s = 0.0;
    ${
      halfW
        ? `// Word-aligned pairs: the caller guarantees K and offsetB are even.
    for (var k = li * 2u; k < p.K; k += ${2 * WG}u) {
      let w = unpack2x16float(W[(row + k) >> 1u]);
      s += w.x * x[p.offsetA + k] + w.y * x[p.offsetA + k + 1u];
    }`
        : `for (var k = li; k < p.K; k += ${WG}u) { s += W[row + k] * x[p.offsetA + k]; }`
    }
    acc[r] = s;
  }
  for (var r = 0u; r < ${ROWS}u; r++) {
    let total = reduce(acc[r], li, false);
    let n = first + r;
    if (li == 0u && n < p.N) {
      var value = p.alpha * (total + lowRank(n));
      if (p.beta != 0.0) { value += p.beta * y[p.offsetC + n]; }
      y[p.offsetC + n] = value;
    }
  }
}
`;
}

/** One output per invocation, its row walked alone, scalar loads: any K and offsets (see the header). */
function rowShader(v: GemvVariant): string {
  const { halfW } = v;
  return /* wgsl */ `
${bindings(v, false)}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * ${WG}u;
  if (n >= p.N) { return; }
  let row = p.offsetB + n * p.K;
  var s = 0.0;
  ${
    halfW
      ? `// Word-aligned pairs: the caller guarantees K and offsetB are even.
  for (var k = 0u; k < p.K; k += 2u) {
    let w = unpack2x16float(W[(row + k) >> 1u]);
    s += w.x * x[p.offsetA + k] + w.y * x[p.offsetA + k + 1u];
  }`
      : `for (var k = 0u; k < p.K; k++) { s += W[row + k] * x[p.offsetA + k]; }`
  }
  var value = p.alpha * (s + lowRank(n));
  if (p.beta != 0.0) { value += p.beta * y[p.offsetC + n]; }
  y[p.offsetC + n] = value;
}
`;
}

/**
 * VEC_ROWS outputs per invocation, their rows read four floats (or eight halves) at a time, each x vector loaded
 * once for all of them: a quarter of the loads and loop steps, which is what a software adapter pays for. Needs
 * K, offsetA and offsetB aligned to whole vectors (`vectorFits`).
 */
const VEC_ROWS = 4;

function vectorRowShader(v: GemvVariant): string {
  const { halfW } = v;
  const rows = Array.from({ length: VEC_ROWS }, (_, r) => r);
  // fp16: one vec4<u32> holds eight weights, matched by two vec4 of x.
  const step = halfW
    ? rows
        .map(
          (r) => `{
      let w = W[row${r} + k];
      acc${r} += vec4f(unpack2x16float(w.x), unpack2x16float(w.y)) * x0
        + vec4f(unpack2x16float(w.z), unpack2x16float(w.w)) * x1;
    }`,
        )
        .join('\n    ')
    : rows.map((r) => `acc${r} += W[row${r} + k] * x0;`).join('\n    ');
  return /* wgsl */ `
${bindings(v, true)}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * ${WG}u) * ${VEC_ROWS}u;
  if (first >= p.N) { return; }
  // Per vector of W: 4 floats, or 8 halves.
  let perVector = ${halfW ? 8 : 4}u;
  let steps = p.K / perVector;
  ${rows.map((r) => `let row${r} = (p.offsetB + min(first + ${r}u, p.N - 1u) * p.K) / perVector;`).join('\n  ')}
  ${rows.map((r) => `var acc${r} = vec4f(0.0);`).join('\n  ')}
  let xo = p.offsetA / 4u;
  for (var k = 0u; k < steps; k++) {
    ${halfW ? 'let x0 = x[xo + 2u * k];\n    let x1 = x[xo + 2u * k + 1u];' : 'let x0 = x[xo + k];'}
    ${step}
  }
  let sums = array<f32, ${VEC_ROWS}>(${rows.map((r) => `dot(acc${r}, vec4f(1.0))`).join(', ')});
  for (var r = 0u; r < ${VEC_ROWS}u; r++) {
    let n = first + r;
    if (n < p.N) {
      var value = p.alpha * (sums[r] + lowRank(n));
      if (p.beta != 0.0) { value += p.beta * y[p.offsetC + n]; }
      y[p.offsetC + n] = value;
    }
  }
}
`;
}

export interface GemvShape {
  N: number;
  K: number;
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  alpha?: number;
  beta?: number;
}

export class GemvKernels {
  /** Compiled on first use, by family, W's precision and low-rank term. */
  private readonly kernels = new Map<string, Kernel>();

  constructor(
    private readonly device: GPUDevice,
    readonly layout: RowLayout = 'cooperative',
  ) {}

  /** Whether fp16 W can take this shape (pairs must not straddle words). */
  static halfFits(s: GemvShape): boolean {
    return s.K % 2 === 0 && (s.offsetB ?? 0) % 2 === 0;
  }

  /** Whether W's rows and x split into whole vectors: 4 floats, or 8 halves. */
  static vectorFits(s: GemvShape, halfW: boolean): boolean {
    const perVector = halfW ? 8 : 4;
    return s.K % perVector === 0 && (s.offsetB ?? 0) % perVector === 0 && (s.offsetA ?? 0) % 4 === 0;
  }

  /** y ← alpha (W x [+ the low-rank term]) + beta y. */
  op(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, s: GemvShape, halfW = false, lowRank?: LowRank): Op {
    if (halfW && !GemvKernels.halfFits(s))
      throw new Error(`fp16 gemv needs an even K and offset (K ${s.K}, offset ${s.offsetB})`);
    // The row layout reads vectors where the shape allows (its vector variant), else scalars.
    const family = this.layout === 'row' ? (GemvKernels.vectorFits(s, halfW) ? 'vector' : 'row') : 'cooperative';
    const outputsPerGroup = family === 'vector' ? WG * VEC_ROWS : family === 'row' ? WG : ROWS;
    const groups = Math.ceil(s.N / outputsPerGroup);
    const gx = Math.min(groups, 65535);
    return this.kernel(family, { halfW, lowRank: Boolean(lowRank) }).op(
      lowRank ? [x, w, y, lowRank.l, lowRank.r] : [x, w, y],
      [
        u32(s.N),
        u32(s.K),
        u32(s.offsetA ?? 0),
        u32(s.offsetB ?? 0),
        u32(s.offsetC ?? 0),
        f32(s.alpha ?? 1),
        f32(s.beta ?? 0),
        u32(0),
        u32(lowRank?.rank ?? 0),
        u32(lowRank?.offsetL ?? 0),
        u32(lowRank?.offsetR ?? 0),
        f32(lowRank?.scale ?? 0),
      ],
      [gx, Math.ceil(groups / gx), 1],
    );
  }

  private kernel(family: 'cooperative' | 'row' | 'vector', v: GemvVariant): Kernel {
    const key = `${family}${v.halfW ? ' f16w' : ''}${v.lowRank ? ' low-rank' : ''}`;
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const shader = { cooperative: cooperativeShader, row: rowShader, vector: vectorRowShader }[family];
      kernel = new Kernel(this.device, shader(v), `gemv ${key}`);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }
}
