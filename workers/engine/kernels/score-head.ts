import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * A reward model's scalar head (Hugging Face's `score` layer: one output, no bias) on the final normed hidden states
 * x [N, d], read at one row per sequence (rows [B] u32, each sequence's last token):
 *   forward   score[b] = x[rows[b]] · w
 *   backward  dx[n] = Σ_{b: rows[b] = n} g[b] w  (0 on every other row),  dw += Σ_b g[b] x[rows[b]]
 * B is a batch's sequence count, small enough for the backward to loop over it per element.
 */
const FORWARD_PARAMS = uniformStruct({ d: 'u32' });
const INPUT_GRAD_PARAMS = uniformStruct({ n: 'u32', d: 'u32', batch: 'u32' });
const WEIGHT_GRAD_PARAMS = uniformStruct({ d: 'u32', batch: 'u32' });

const forwardShader = /* wgsl */ `
${FORWARD_PARAMS.wgsl}
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
${INPUT_GRAD_PARAMS.wgsl}
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
${WEIGHT_GRAD_PARAMS.wgsl}
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

/** The hidden states x [*, d], the head w [d], and the row each of `batch` sequences is scored at. */
export interface ScoreHeadIo {
  x: GPUBuffer;
  w: GPUBuffer;
  rows: GPUBuffer;
  batch: number;
  d: number;
}

export class ScoreHeadKernels {
  private readonly forward: Kernel;
  private readonly inputGrad: Kernel;
  private readonly weightGrad: Kernel;

  constructor(device: GPUDevice) {
    this.forward = new Kernel(device, forwardShader, 'score_head');
    this.inputGrad = new Kernel(device, inputGradShader, 'score_head_dx');
    this.weightGrad = new Kernel(device, weightGradShader, 'score_head_dw');
  }

  /** score [batch] = x[rows[b]] · w, x [*, d]. */
  forwardOp({ x, w, rows, score, batch, d }: ScoreHeadIo & { score: GPUBuffer }): Op {
    return this.forward.op([x, w, rows, score], FORWARD_PARAMS.pack({ d }), [batch, 1, 1]);
  }

  /** dx [n, d] = g[b] w on each scored row, 0 elsewhere (overwrites). */
  inputGradOp({
    w,
    rows,
    g,
    dx,
    n,
    d,
    batch,
  }: Omit<ScoreHeadIo, 'x'> & { g: GPUBuffer; dx: GPUBuffer; n: number }): Op {
    return this.inputGrad.op([w, rows, g, dx], INPUT_GRAD_PARAMS.pack({ n, d, batch }), grid1d(n * d, 64));
  }

  /** dw [d] += Σ_b g[b] x[rows[b]]. */
  weightGradOp({ x, rows, g, dw, d, batch }: Omit<ScoreHeadIo, 'w'> & { g: GPUBuffer; dw: GPUBuffer }): Op {
    return this.weightGrad.op([x, rows, g, dw], WEIGHT_GRAD_PARAMS.pack({ d, batch }), grid1d(d, 64));
  }
}
