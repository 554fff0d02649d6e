import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct, workgroupReduce } from './wgsl';

/**
 * Cross-entropy over the vocabulary one chunk of logits at a time, so [tokens, vocab] never exists:
 *   logits chunk [tokens, chunkRows]: vocabulary rows [first, first + chunkRows);  targets [tokens] i32 (-100 or
 *   outside the vocabulary: ignored);  weights [tokens];  stats [tokens, 3] = running max, Σ exp(logit - max), target
 *   `stats` per chunk: merges the chunk into the running (max, sum) online, picks the target's logit
 *   `finish`: lse = max + log(sum), loss[t] = (lse - targetLogit) · weight[t]
 *   `backward` per chunk (logits recomputed): logits ← (softmax - onehot(target)) · weight, in place
 */
const WG = 64;
const STATS_PARAMS = uniformStruct({ tokens: 'u32', chunkRows: 'u32', first: 'u32', isFirstChunk: 'u32' });
const FINISH_PARAMS = uniformStruct({ tokens: 'u32' });
const BACKWARD_PARAMS = uniformStruct({ tokens: 'u32', chunkRows: 'u32', first: 'u32' });

const statsShader = /* wgsl */ `
${STATS_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${workgroupReduce(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= p.tokens) { return; }
  let base = t * p.chunkRows;
  var m = -3.0e38;
  for (var j = li; j < p.chunkRows; j += ${WG}u) { m = max(m, logits[base + j]); }
  m = reduce(m, li, true);
  var s = 0.0;
  for (var j = li; j < p.chunkRows; j += ${WG}u) { s += exp(logits[base + j] - m); }
  s = reduce(s, li, false);
  if (li != 0u) { return; }
  if (p.isFirstChunk != 0u) {
    stats[t * 3u] = m;
    stats[t * 3u + 1u] = s;
    stats[t * 3u + 2u] = 0.0;
  } else {
    let oldMax = stats[t * 3u];
    let newMax = max(oldMax, m);
    stats[t * 3u] = newMax;
    stats[t * 3u + 1u] = stats[t * 3u + 1u] * exp(oldMax - newMax) + s * exp(m - newMax);
  }
  let local = u32(targets[t]) - p.first;  // wraps for targets below the chunk and for -100
  if (targets[t] >= 0 && local < p.chunkRows) { stats[t * 3u + 2u] = logits[base + local]; }
}
`;

const finishShader = /* wgsl */ `
${FINISH_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> stats: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= p.tokens) { return; }
  let l = stats[t * 3u] + log(stats[t * 3u + 1u]);
  lse[t] = l;
  loss[t] = select(0.0, (l - stats[t * 3u + 2u]) * weights[t], weights[t] != 0.0);
}
`;

const backwardShader = /* wgsl */ `
${BACKWARD_PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> targets: array<i32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.tokens * p.chunkRows) { return; }
  let t = i / p.chunkRows;
  let j = i % p.chunkRows;
  let onehot = select(0.0, 1.0, targets[t] >= 0 && u32(targets[t]) == p.first + j);
  logits[i] = (exp(logits[i] - lse[t]) - onehot) * weights[t];
}
`;

/** A chunk of logits: tokens, and vocabulary rows [first, first + rows). */
export interface LogitsChunk {
  tokens: number;
  first: number;
  rows: number;
}

export class CrossEntropyKernels {
  private readonly stats: Kernel;
  private readonly finish: Kernel;
  private readonly backward: Kernel;

  constructor(device: GPUDevice) {
    this.stats = new Kernel(device, statsShader, 'cross_entropy_stats');
    this.finish = new Kernel(device, finishShader, 'cross_entropy_finish');
    this.backward = new Kernel(device, backwardShader, 'cross_entropy_backward');
  }

  /** stats [tokens, 3] ← merged with the logits [tokens, rows] of vocabulary rows [first, first + rows). */
  statsOp(o: { logits: GPUBuffer; targets: GPUBuffer; stats: GPUBuffer } & LogitsChunk): Op {
    const { tokens, first, rows } = o;
    const uniforms = STATS_PARAMS.pack({ tokens, chunkRows: rows, first, isFirstChunk: first === 0 ? 1 : 0 });
    return this.stats.op([o.logits, o.targets, o.stats], uniforms, grid1d(tokens, 1));
  }

  /** lse [tokens] = max + log(sum); loss [tokens] = (lse - target logit) · weight. */
  finishOp(o: { stats: GPUBuffer; weights: GPUBuffer; lse: GPUBuffer; loss: GPUBuffer; tokens: number }): Op {
    const uniforms = FINISH_PARAMS.pack({ tokens: o.tokens });
    return this.finish.op([o.stats, o.weights, o.lse, o.loss], uniforms, grid1d(o.tokens, 64));
  }

  /** logits [tokens, rows] ← (softmax - onehot(target)) · weight, in place. */
  backwardOp(o: { targets: GPUBuffer; weights: GPUBuffer; lse: GPUBuffer; logits: GPUBuffer } & LogitsChunk): Op {
    const { tokens, first, rows } = o;
    const uniforms = BACKWARD_PARAMS.pack({ tokens, chunkRows: rows, first });
    return this.backward.op([o.targets, o.weights, o.lse, o.logits], uniforms, grid1d(tokens * rows, 64));
  }
}
