import { Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { type RowLayout, rowKernel } from './wgsl';

/**
 * Causal softmax over attention scores, in place.
 *   scores: [batch * heads, seq, seq]; row r is query position i = r % seq, which sees keys j <= i.
 * Forward: S -> P = softmax over j <= i, 0 for j > i (the scale 1/sqrt(headDim) is applied by the QK^T matmul).
 * Backward: dP -> dS = P * (dP - sum_j P dP), in place over dP.
 * A workgroup per row, or an invocation per row (`RowLayout`).
 */

function forwardShader(layout: RowLayout): string {
  const k = rowKernel(layout);
  return /* wgsl */ `
struct Params { rows: u32, seq: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
${k.reduce}
@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.seq;
  let visible = row % p.seq + 1u;
  var m = -3.0e38;
  for (var j = li; j < visible; j += ${k.stride}) { m = max(m, s[base + j]); }
  m = reduce(m, li, true);
  var total = 0.0;
  for (var j = li; j < visible; j += ${k.stride}) { let e = exp(s[base + j] - m); s[base + j] = e; total += e; }
  total = reduce(total, li, false);
  let inv = 1.0 / total;
  for (var j = li; j < p.seq; j += ${k.stride}) { s[base + j] = select(0.0, s[base + j] * inv, j < visible); }
}
`;
}

function backwardShader(layout: RowLayout): string {
  const k = rowKernel(layout);
  return /* wgsl */ `
struct Params { rows: u32, seq: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read_write> d: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${k.reduce}
@compute @workgroup_size(${k.size})
fn main(${k.builtins}) {
  ${k.prelude}
  if (row >= p.rows) { return; }
  let base = row * p.seq;
  var dot = 0.0;
  for (var j = li; j < p.seq; j += ${k.stride}) { dot += probs[base + j] * d[base + j]; }
  dot = reduce(dot, li, false);
  for (var j = li; j < p.seq; j += ${k.stride}) { d[base + j] = probs[base + j] * (d[base + j] - dot); }
}
`;
}

export class CausalSoftmaxKernels {
  private readonly forward: Kernel;
  private readonly backward: Kernel;
  private readonly grid: (rows: number) => [number, number, number];

  constructor(device: GPUDevice, layout: RowLayout = 'cooperative') {
    this.forward = new Kernel(device, forwardShader(layout), 'causal_softmax_forward');
    this.backward = new Kernel(device, backwardShader(layout), 'causal_softmax_backward');
    this.grid = rowKernel(layout).workgroups;
  }

  /** scores -> probabilities, in place; `rows` = batch * heads * seq. */
  forwardOp(scores: GPUBuffer, rows: number, seq: number): Op {
    return this.forward.op([scores], [u32(rows), u32(seq), u32(0), u32(0)], this.grid(rows));
  }

  /** dP -> dS, in place over `grad`. */
  backwardOp(probs: GPUBuffer, grad: GPUBuffer, rows: number, seq: number): Op {
    return this.backward.op([probs, grad], [u32(rows), u32(seq), u32(0), u32(0)], this.grid(rows));
  }
}
