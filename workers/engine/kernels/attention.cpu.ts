/**
 * CPU twin of the attention kernels (float64), and the float64 reference model's attention: causal grouped-query
 * attention with the probability matrix kept, as Hugging Face computes it. Query head h reads kv head
 * floor(h / (H / KV)): consecutive query heads share one kv head, as HF's repeat_kv lays them out.
 * Layouts as in attention.ts: q, out [B * T, H * hd]; k, v [B * T, KV * hd].
 */

export interface AttentionDims {
  B: number;
  T: number;
  H: number;
  KV: number;
  hd: number;
  /** Multiplies q · k; hd^-½ when left out. */
  scale?: number;
  /** Sliding-window attention: query t sees keys t2 with t − t2 < window; every earlier key when left out. */
  window?: number;
}

/** The first key query t sees. */
function firstKey(d: AttentionDims, t: number): number {
  return d.window === undefined ? 0 : Math.max(0, t - d.window + 1);
}

/** Index of head `h`'s vector at position (b, t) in a [B * T, heads * hd] tensor. */
function headOffset(d: AttentionDims, b: number, t: number, heads: number, h: number): number {
  return ((b * d.T + t) * heads + h) * d.hd;
}

/**
 * q, k, v → out: [N, H * hd], probs: [B, H, T, T] (softmax weights of query t over its visible keys t2 <= t; zero
 * elsewhere, i.e. the causal mask, and the window's), lse: [B, H, T] (each query's log Σ exp of its scaled scores).
 */
export function attentionForwardCpu(q: Float64Array, k: Float64Array, v: Float64Array, d: AttentionDims) {
  const { B, T, H, KV, hd } = d;
  const group = H / KV;
  const scale = d.scale ?? 1 / Math.sqrt(hd);
  const out = new Float64Array(B * T * H * hd);
  const probs = new Float64Array(B * H * T * T);
  const lse = new Float64Array(B * H * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = headOffset(d, b, t, H, h);
        const row = ((b * H + h) * T + t) * T;
        // scores, then a numerically stable softmax over the visible keys first..t
        const first = firstKey(d, t);
        let max = Number.NEGATIVE_INFINITY;
        for (let t2 = first; t2 <= t; t2++) {
          const ko = headOffset(d, b, t2, KV, kvh);
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[qo + i] * k[ko + i];
          probs[row + t2] = dot * scale;
          max = Math.max(max, probs[row + t2]);
        }
        let sum = 0;
        for (let t2 = first; t2 <= t; t2++) {
          probs[row + t2] = Math.exp(probs[row + t2] - max);
          sum += probs[row + t2];
        }
        lse[(b * H + h) * T + t] = max + Math.log(sum);
        for (let t2 = first; t2 <= t; t2++) {
          probs[row + t2] /= sum;
          const vo = headOffset(d, b, t2, KV, kvh);
          for (let i = 0; i < hd; i++) out[qo + i] += probs[row + t2] * v[vo + i];
        }
      }
    }
  }
  return { out, probs, lse };
}

/**
 * Backward of attentionForwardCpu: dp = dout · v; ds = p * (dp - sum(p * dp)) (softmax); dq = scale * ds · k,
 * dk = scale * ds^T · q, dv = p^T · dout. A kv head's gradients sum over the query heads of its group.
 */
export function attentionBackwardCpu(
  dout: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  probs: Float64Array,
  d: AttentionDims,
) {
  const { B, T, H, KV, hd } = d;
  const group = H / KV;
  const scale = d.scale ?? 1 / Math.sqrt(hd);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = headOffset(d, b, t, H, h);
        const row = ((b * H + h) * T + t) * T;
        let pdp = 0; // sum over t2 of p * dp
        const first = firstKey(d, t);
        for (let t2 = first; t2 <= t; t2++) {
          const vo = headOffset(d, b, t2, KV, kvh);
          let dot = 0;
          for (let i = 0; i < hd; i++) {
            dot += dout[qo + i] * v[vo + i];
            dv[vo + i] += probs[row + t2] * dout[qo + i];
          }
          dp[t2] = dot;
          pdp += probs[row + t2] * dot;
        }
        for (let t2 = first; t2 <= t; t2++) {
          const ds = probs[row + t2] * (dp[t2] - pdp) * scale;
          const ko = headOffset(d, b, t2, KV, kvh);
          for (let i = 0; i < hd; i++) {
            dq[qo + i] += ds * k[ko + i];
            dk[ko + i] += ds * q[qo + i];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
