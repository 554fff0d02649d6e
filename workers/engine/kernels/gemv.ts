import { f32, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { workgroupReduce } from './wgsl';

/**
 * Matrix-vector product for decoding one token: y = alpha * W · x + beta * y, with W stored [N, K] row-major
 * (a linear layer's weight, or a LoRA matrix), x [K], y [N]; the matmul kernel's x · W^T for M = 1.
 *   x at offsetA, W at offsetB (elements), y at offsetC.
 * Batch-1 decoding reads every weight once per token, so this is about memory bandwidth: each workgroup owns
 * ROWS outputs and its invocations stride along K together, so consecutive invocations read consecutive words of
 * a row; the tiled matmul would leave most of a 64-row tile idle and the GPU nearly empty. W may be fp16, two
 * values per 32-bit word (unpack2x16float, core WGSL); accumulation is fp32.
 */
const WG = 64;
const ROWS = 4;

function shader(halfW: boolean): string {
  return /* wgsl */ `
struct Params { N: u32, K: u32, offsetA: u32, offsetB: u32, offsetC: u32, alpha: f32, beta: f32, _p0: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<${halfW ? 'u32' : 'f32'}>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
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
      var value = p.alpha * total;
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
  private readonly f32w: Kernel;
  private readonly f16w: Kernel;

  constructor(device: GPUDevice) {
    this.f32w = new Kernel(device, shader(false), 'gemv');
    this.f16w = new Kernel(device, shader(true), 'gemv_f16w');
  }

  /** Whether fp16 W can take this shape (pairs must not straddle words). */
  static halfFits(s: GemvShape): boolean {
    return s.K % 2 === 0 && (s.offsetB ?? 0) % 2 === 0;
  }

  op(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, s: GemvShape, halfW = false): Op {
    if (halfW && !GemvKernels.halfFits(s))
      throw new Error(`fp16 gemv needs an even K and offset (K ${s.K}, offset ${s.offsetB})`);
    const groups = Math.ceil(s.N / ROWS);
    const gx = Math.min(groups, 65535);
    return (halfW ? this.f16w : this.f32w).op(
      [x, w, y],
      [
        u32(s.N),
        u32(s.K),
        u32(s.offsetA ?? 0),
        u32(s.offsetB ?? 0),
        u32(s.offsetC ?? 0),
        f32(s.alpha ?? 1),
        f32(s.beta ?? 0),
        u32(0),
      ],
      [gx, Math.ceil(groups / gx), 1],
    );
  }
}
