import { f32, grid1d, Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { workgroupReduce } from './wgsl';

/**
 * Attention for decoding one token at a time over a key-value cache (batch 1).
 *   position: [1] u32, the new token's position p (0-based), written by the CPU before each token
 *   k, v: [KV * hd], the new token's key (after rotary embeddings) and value
 *   kCache, vCache: [maxLen, KV * hd], position-major, so appending is one contiguous row
 *   q: [H * hd] (after rotary embeddings); out: [H * hd]
 *   scores: [H, maxLen] scratch
 * `append` writes row p of both caches; `attend` computes, per query head h with key-value head g = h / (H / KV),
 *   out_h = Σ_{j ≤ p} softmax_j(scale · q_h · k_{j,g}) v_{j,g}
 * Positions past p are never read, so the causal mask is the loop bound.
 */
const WG = 64;

const appendShader = /* wgsl */ `
struct Params { width: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> position: array<u32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(4) var<storage, read_write> vCache: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.width) { return; }
  let row = position[0] * p.width;
  kCache[row + i] = k[i];
  vCache[row + i] = v[i];
}
`;

const attendShader = /* wgsl */ `
struct Params { heads: u32, kvHeads: u32, headDim: u32, maxLen: u32, scale: f32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> position: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<f32>;
@group(0) @binding(3) var<storage, read> vCache: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${workgroupReduce(WG)}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  let g = h / (p.heads / p.kvHeads);
  let length = position[0] + 1u;
  let width = p.kvHeads * p.headDim;
  let qBase = h * p.headDim;
  let sBase = h * p.maxLen;
  var m = -3.0e38;
  for (var j = li; j < length; j += ${WG}u) {
    let kBase = j * width + g * p.headDim;
    var dot = 0.0;
    for (var i = 0u; i < p.headDim; i++) { dot += q[qBase + i] * kCache[kBase + i]; }
    let s = dot * p.scale;
    scores[sBase + j] = s;
    m = max(m, s);
  }
  m = reduce(m, li, true);
  var total = 0.0;
  for (var j = li; j < length; j += ${WG}u) {
    let e = exp(scores[sBase + j] - m);
    scores[sBase + j] = e;
    total += e;
  }
  total = reduce(total, li, false);
  // Every invocation reads all the weights next: make this workgroup's writes to them visible.
  storageBarrier();
  for (var i = li; i < p.headDim; i += ${WG}u) {
    var acc = 0.0;
    for (var j = 0u; j < length; j++) { acc += scores[sBase + j] * vCache[j * width + g * p.headDim + i]; }
    out[qBase + i] = acc / total;
  }
}
`;

export interface DecodeShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  maxLen: number;
}

export class DecodeAttentionKernels {
  private readonly append: Kernel;
  private readonly attend: Kernel;

  constructor(device: GPUDevice) {
    this.append = new Kernel(device, appendShader, 'kv_append');
    this.attend = new Kernel(device, attendShader, 'decode_attention');
  }

  appendOp(position: GPUBuffer, k: GPUBuffer, v: GPUBuffer, kCache: GPUBuffer, vCache: GPUBuffer, width: number): Op {
    return this.append.op([position, k, v, kCache, vCache], [u32(width), u32(0), u32(0), u32(0)], grid1d(width, 64));
  }

  attendOp(
    position: GPUBuffer,
    q: GPUBuffer,
    kCache: GPUBuffer,
    vCache: GPUBuffer,
    scores: GPUBuffer,
    out: GPUBuffer,
    s: DecodeShape,
  ): Op {
    return this.attend.op(
      [position, q, kCache, vCache, scores, out],
      [
        u32(s.heads),
        u32(s.kvHeads),
        u32(s.headDim),
        u32(s.maxLen),
        f32(1 / Math.sqrt(s.headDim)),
        u32(0),
        u32(0),
        u32(0),
      ],
      [s.heads, 1, 1],
    );
  }
}
