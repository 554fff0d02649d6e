import { grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * A reward model's scalar head (Hugging Face's `score` layer, one output, no bias) on the final normed hidden
 * states x: [N, d], read at one row per sequence (rows: [B] u32, the sequence's last token):
 *   forward   score[b] = x[rows[b]] · w
 *   backward  dx[n] = sum over b with rows[b] = n of g[b] w  (every other row 0)
 *             dw   += sum over b of g[b] x[rows[b]]
 * B is a batch's sequence count, so the backward loops over it per element.
 */
const forwardShader = /* wgsl */ `
struct Params { d: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> score: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  let base = rows[b] * p.d;
  var s = 0.0;
  for (var j = lid; j < p.d; j += 64u) { s += x[base + j] * w[j]; }
  partial[lid] = s;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { score[b] = partial[0]; }
}
`;

const inputGradShader = /* wgsl */ `
struct Params { n: u32, d: u32, batch: u32, _p0: u32 }
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n * p.d) { return; }
  let row = i / p.d;
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) {
    if (rows[b] == row) { s += g[b]; }
  }
  dx[i] = s * w[i % p.d];
}
`;

const weightGradShader = /* wgsl */ `
struct Params { d: u32, batch: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.d) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) { s += g[b] * x[rows[b] * p.d + j]; }
  dw[j] += s;
}
`;

export class ScoreHeadKernels {
  private readonly forward: Kernel;
  private readonly inputGrad: Kernel;
  private readonly weightGrad: Kernel;

  constructor(device: GPUDevice) {
    this.forward = new Kernel(device, forwardShader, 'score_head');
    this.inputGrad = new Kernel(device, inputGradShader, 'score_head_dx');
    this.weightGrad = new Kernel(device, weightGradShader, 'score_head_dw');
  }

  /** score [batch] = x[rows[b]] · w, x: [*, d]. */
  forwardOp(x: GPUBuffer, w: GPUBuffer, rows: GPUBuffer, score: GPUBuffer, batch: number, d: number): Op {
    return this.forward.op([x, w, rows, score], [u32(d), u32(0), u32(0), u32(0)], [batch, 1, 1]);
  }

  /** dx [n, d] = g[b] w on each scored row, 0 elsewhere (overwrites). */
  inputGradOp(w: GPUBuffer, rows: GPUBuffer, g: GPUBuffer, dx: GPUBuffer, n: number, d: number, batch: number): Op {
    return this.inputGrad.op([w, rows, g, dx], [u32(n), u32(d), u32(batch), u32(0)], grid1d(n * d, 64));
  }

  /** dw [d] += sum over b of g[b] x[rows[b]] (accumulates). */
  weightGradOp(x: GPUBuffer, rows: GPUBuffer, g: GPUBuffer, dw: GPUBuffer, d: number, batch: number): Op {
    return this.weightGrad.op([x, rows, g, dw], [u32(d), u32(batch), u32(0), u32(0)], grid1d(d, 64));
  }
}
