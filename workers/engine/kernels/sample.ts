import { Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { uniformStruct } from './wgsl';

/**
 * A token per row of logits [rows, V] into ids [rows] u32, draws = [temperature, top-k, top-p, 0, u_0 .. u_{rows-1}]:
 *   temperature 0: the first index of the largest logit
 *   else: the first i with Σ_{j ≤ i} w_j > u_r · Σ_j w_j, w_j = exp((l_j - max l) / temperature)
 *   top-k (1..TOP_K_MAX): over the k largest (ties to the lower index) in rank order, cut to the nucleus of mass top-p
 *   forced[r] ≥ 0 (a prompt token still to feed): that token instead
 * CPU twin: core/generation/sampling.ts's `sampleToken` with `() => u_r` (up to fp32 sums); only the ids are read
 * back. A workgroup per row, each invocation a chunk of the vocabulary; the k-th largest by a radix select over the
 * logits' bits (four 256-bin histograms), so no invocation sorts more than the k kept.
 */
const WG = 256;
/** The largest top-k drawn on the GPU (the kept tokens are ranked in workgroup memory); larger ones draw on the CPU. */
export const TOP_K_MAX = 64;
/** Floats before the uniforms in the draws buffer: temperature, top-k, top-p and one unused. */
export const DRAWS_HEADER = 4;

const PARAMS = uniformStruct({ V: 'u32' });

const shader = /* wgsl */ `
${PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> draws: array<f32>;
@group(0) @binding(2) var<storage, read> forced: array<i32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

// Each chunk's largest logit and its index (indices apart: a float's bits may not survive a move as a float).
var<workgroup> bestValue: array<f32, ${WG}>;
var<workgroup> bestIndex: array<u32, ${WG}>;
var<workgroup> sums: array<f32, ${WG}>;
var<workgroup> rowMax: f32;
var<workgroup> sharedSettings: vec4f; // temperature, top-k, top-p
var<workgroup> sharedForced: i32;
var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> selected: vec2u; // the radix select's byte, and how many of its ties it still wants
var<workgroup> ties: array<u32, ${WG}>;
var<workgroup> aboveCount: atomic<u32>;
var<workgroup> keptValue: array<f32, ${TOP_K_MAX}>; // the top k logits, ranked
var<workgroup> keptIndex: array<u32, ${TOP_K_MAX}>; // and their indices

// A logit's bits as a u32 that orders as the float does.
fn orderKey(l: f32) -> u32 {
  let b = bitcast<u32>(l);
  return select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Ranks the top k of row's logits into kept[0..k) (largest first, ties to the lower index): the k-th largest key by
// a radix select, then every logit above it and the first of its ties.
fn topK(base: u32, lo: u32, hi: u32, li: u32, k: u32) {
  var prefix = 0u;
  var mask = 0u;
  var want = k;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    atomicStore(&histogram[li], 0u);
    workgroupBarrier();
    for (var i = lo; i < hi; i++) {
      let key = orderKey(logits[base + i]);
      if ((key & mask) == prefix) { atomicAdd(&histogram[(key >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (li == 0u) {
      // From the highest byte down, until the bins reach the count still wanted.
      var above = 0u;
      var byte = 255u;
      loop {
        let n = atomicLoad(&histogram[byte]);
        if (above + n >= want || byte == 0u) { break; }
        above += n;
        byte -= 1u;
      }
      selected = vec2u(byte, want - above);
    }
    let s = workgroupUniformLoad(&selected);
    prefix |= s.x << shift;
    mask |= 255u << shift;
    want = s.y;
  }
  // prefix is the k-th largest key; want of its ties are kept, the first in index order.
  var mine = 0u;
  for (var i = lo; i < hi; i++) { if (orderKey(logits[base + i]) == prefix) { mine++; } }
  ties[li] = mine;
  if (li == 0u) { atomicStore(&aboveCount, 0u); }
  workgroupBarrier();
  var rank = 0u;
  for (var j = 0u; j < li; j++) { rank += ties[j]; }
  for (var i = lo; i < hi; i++) {
    let l = logits[base + i];
    let key = orderKey(l);
    var slot = ${TOP_K_MAX}u;
    if (key > prefix) {
      slot = atomicAdd(&aboveCount, 1u);
    } else if (key == prefix) {
      if (rank < want) { slot = k - want + rank; }
      rank++;
    }
    if (slot < ${TOP_K_MAX}u) {
      keptValue[slot] = l;
      keptIndex[slot] = i;
    }
  }
  workgroupBarrier();
  if (li == 0u) {
    // Insertion sort of at most TOP_K_MAX: largest first, the lower index first among equals.
    for (var a = 1u; a < k; a++) {
      let value = keptValue[a];
      let index = keptIndex[a];
      var b = a;
      while (b > 0u && (keptValue[b - 1u] < value || (keptValue[b - 1u] == value && keptIndex[b - 1u] > index))) {
        keptValue[b] = keptValue[b - 1u];
        keptIndex[b] = keptIndex[b - 1u];
        b--;
      }
      keptValue[b] = value;
      keptIndex[b] = index;
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x;
  let base = row * p.V;
  let per = (p.V + ${WG - 1}u) / ${WG}u;
  let lo = min(li * per, p.V);
  let hi = min(lo + per, p.V);
  // Read through workgroup memory, so the compiler knows every invocation holds the same value (barriers follow).
  if (li == 0u) {
    sharedSettings = vec4f(draws[0], draws[1], draws[2], 0.0);
    sharedForced = forced[row];
  }
  let settings = workgroupUniformLoad(&sharedSettings);
  let temperature = settings.x;
  let k = u32(settings.y);
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
  bestValue[li] = m;
  bestIndex[li] = at;
  workgroupBarrier();
  if (li == 0u) {
    var top = 0u;
    for (var c = 1u; c < ${WG}u; c++) {
      if (bestValue[c] > bestValue[top]) { top = c; }
    }
    rowMax = bestValue[top];
    if (temperature == 0.0) { ids[row] = bestIndex[top]; }
  }
  workgroupBarrier();
  if (temperature == 0.0) { return; }
  let peak = rowMax;
  let u = draws[${DRAWS_HEADER}u + row];
  if (k > 0u) {
    topK(base, lo, hi, li, k);
    if (li == 0u) {
      // Weights of the ranked k, the nucleus of mass top-p among them, then the walk over those kept.
      var w: array<f32, ${TOP_K_MAX}>;
      var total = 0.0;
      for (var j = 0u; j < k; j++) {
        w[j] = exp((keptValue[j] - peak) / temperature);
        total += w[j];
      }
      var n = k;
      if (settings.z < 1.0) {
        let mass = settings.z * total;
        var reached = 0.0;
        n = 0u;
        while (n < k && reached < mass) {
          reached += w[n];
          n++;
        }
        n = max(n, 1u);
      }
      var sum = 0.0;
      for (var j = 0u; j < n; j++) { sum += w[j]; }
      var r = u * sum;
      var pick = keptIndex[n - 1u];
      for (var j = 0u; j < n; j++) {
        r -= w[j];
        if (r < 0.0) {
          pick = keptIndex[j];
          break;
        }
      }
      ids[row] = pick;
    }
    return;
  }
  var s = 0.0;
  for (var i = lo; i < hi; i++) { s += exp((logits[base + i] - peak) / temperature); }
  sums[li] = s;
  workgroupBarrier();
  if (li == 0u) {
    var total = 0.0;
    for (var c = 0u; c < ${WG}u; c++) { total += sums[c]; }
    // The chunk holding the target, and what is left of the target when it starts.
    var r = u * total;
    var chunk = 0u;
    for (var c = 0u; c < ${WG}u; c++) {
      chunk = c;
      if (r < sums[c]) { break; }
      r -= sums[c];
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

export interface SampleIo {
  logits: GPUBuffer;
  draws: GPUBuffer;
  forced: GPUBuffer;
  ids: GPUBuffer;
  rows: number;
  V: number;
}

export class SampleKernel {
  private readonly kernel: Kernel;

  constructor(device: GPUDevice) {
    this.kernel = new Kernel(device, shader, 'sample');
  }

  /**
   * ids [rows] u32 ← a token per row of logits [rows, V], or the row's forced token; draws [DRAWS_HEADER + rows]
   * f32 holds the temperature, top-k (0: none; at most TOP_K_MAX and V) and top-p, then each row's uniform in
   * [0, 1), and forced [rows] i32 each row's forced token or -1, written before each run (`drawsFor`).
   */
  op({ logits, draws, forced, ids, rows, V }: SampleIo): Op {
    return this.kernel.op([logits, draws, forced, ids], PARAMS.pack({ V }), [rows, 1, 1]);
  }
}

/** The sampling settings the kernel draws with (no repetition penalty). */
export interface DrawSettings {
  temperature: number;
  /** 0: none; at most TOP_K_MAX and the vocabulary. */
  topK: number;
  topP: number;
}

/** The draws buffer's contents for a run: the settings, then each row's uniform. */
export function drawsFor(s: DrawSettings, uniforms: readonly number[]): Float32Array<ArrayBuffer> {
  if (!(s.topK <= TOP_K_MAX)) throw new Error(`top-k ${s.topK} is past the ${TOP_K_MAX} the GPU draws with`);
  return Float32Array.of(s.temperature, s.topK, s.topP, 0, ...uniforms);
}
