import { Kernel, u32 } from '../gpu/kernel';
import type { Op } from '../gpu/ops';

/**
 * Draws a token per row from logits on the GPU, for sampling without cuts (temperature only, as policy
 * optimization samples): only the ids go back to the CPU, not [rows, V] logits, and no CPU pass over the
 * vocabulary. Per row r, with draws = [temperature, u_0 .. u_{rows-1}]:
 *   temperature 0: the first index of the largest logit (greedy);
 *   else: the first index i at which Σ_{j ≤ i} w_j exceeds u_r · Σ_j w_j, w_j = exp((l_j - max_k l_k) / temperature)
 * which is core/generation/sampling.ts's draw with the same uniform (its CPU twin: `sampleToken` with no cuts and
 * `() => u_r` as its generator), up to float32 rounding of the sums.
 * A row with a forced token (forced[r] ≥ 0: a prompt token still to feed) takes it instead, so the ids can be the
 * decoder's next input as they stand, with no CPU between one step and the next.
 * A workgroup per row: each invocation takes a contiguous chunk of the vocabulary (max and sum), the chunk sums
 * are scanned in order, and the invocation whose chunk holds the target walks it.
 */
const WG = 256;

const shader = /* wgsl */ `
struct Params { V: u32, rows: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> draws: array<f32>;
@group(0) @binding(2) var<storage, read> forced: array<i32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> best: array<vec2f, ${WG}>; // (value, index as f32 bits) of each chunk's largest logit
var<workgroup> sums: array<f32, ${WG}>;
var<workgroup> rowMax: f32;
var<workgroup> sharedTemperature: f32;
var<workgroup> sharedForced: i32;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x;
  let base = row * p.V;
  let per = (p.V + ${WG - 1}u) / ${WG}u;
  let lo = min(li * per, p.V);
  let hi = min(lo + per, p.V);
  // Read through workgroup memory, so the compiler knows every invocation holds the same value (barriers follow).
  if (li == 0u) {
    sharedTemperature = draws[0];
    sharedForced = forced[row];
  }
  let temperature = workgroupUniformLoad(&sharedTemperature);
  let force = workgroupUniformLoad(&sharedForced);
  if (force >= 0) {
    if (li == 0u) { ids[row] = u32(force); }
    return;
  }
  // The chunk's largest logit, first index on ties; an empty chunk offers -inf.
  var m = -3.4e38;
  var at = lo;
  for (var i = lo; i < hi; i++) {
    let l = logits[base + i];
    if (l > m) { m = l; at = i; }
  }
  best[li] = vec2f(m, bitcast<f32>(at));
  workgroupBarrier();
  if (li == 0u) {
    var top = best[0];
    for (var k = 1u; k < ${WG}u; k++) {
      if (best[k].x > top.x) { top = best[k]; }
    }
    rowMax = top.x;
    if (temperature == 0.0) { ids[row] = bitcast<u32>(top.y); }
  }
  workgroupBarrier();
  if (temperature == 0.0) { return; }
  let peak = rowMax;
  var s = 0.0;
  for (var i = lo; i < hi; i++) { s += exp((logits[base + i] - peak) / temperature); }
  sums[li] = s;
  workgroupBarrier();
  if (li == 0u) {
    var total = 0.0;
    for (var k = 0u; k < ${WG}u; k++) { total += sums[k]; }
    // The chunk holding the target, and what is left of the target when it starts.
    var r = draws[1u + row] * total;
    var chunk = 0u;
    for (var k = 0u; k < ${WG}u; k++) {
      chunk = k;
      if (r < sums[k]) { break; }
      r -= sums[k];
    }
    // Rounding may leave the target past its chunk's walk: the chunk's last token takes it (the vocabulary's last
    // past the last chunk, as on the CPU).
    let first = min(chunk * per, p.V);
    var pick = max(min(first + per, p.V), 1u) - 1u;
    for (var i = first; i < min(first + per, p.V); i++) {
      let w = exp((logits[base + i] - peak) / temperature);
      r -= w;
      if (r < 0.0) { pick = i; break; }
    }
    ids[row] = pick;
  }
}
`;

export class SampleKernel {
  private readonly kernel: Kernel;

  constructor(device: GPUDevice) {
    this.kernel = new Kernel(device, shader, 'sample');
  }

  /**
   * ids [rows] u32 ← a token per row of logits [rows, V], or the row's forced token; draws [1 + rows] f32 holds the
   * temperature, then each row's uniform in [0, 1), and forced [rows] i32 each row's forced token or -1, written
   * before each run.
   */
  op(logits: GPUBuffer, draws: GPUBuffer, forced: GPUBuffer, ids: GPUBuffer, s: { rows: number; V: number }): Op {
    return this.kernel.op([logits, draws, forced, ids], [u32(s.V), u32(s.rows), u32(0), u32(0)], [s.rows, 1, 1]);
  }
}
