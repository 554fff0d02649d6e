import type { DecodeShape } from './decode-attention';

/**
 * The CPU twin of decode attention: the query of the token at `position` against cache rows 0..position
 * (position-major [maxLen, KV * hd]), grouped-query heads sharing their key-value head.
 */
export function decodeAttentionCpu(
  q: ArrayLike<number>,
  kCache: ArrayLike<number>,
  vCache: ArrayLike<number>,
  position: number,
  s: Omit<DecodeShape, 'maxLen'>,
): Float64Array {
  const { heads: H, kvHeads: KV, headDim: hd } = s;
  const width = KV * hd;
  const out = new Float64Array(H * hd);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / KV));
    const scores = Array.from({ length: position + 1 }, (_, j) => {
      let dot = 0;
      for (let i = 0; i < hd; i++) dot += q[h * hd + i] * kCache[j * width + g * hd + i];
      return dot / Math.sqrt(hd);
    });
    const max = Math.max(...scores);
    const weights = scores.map((x) => Math.exp(x - max));
    const total = weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < hd; i++) {
      let acc = 0;
      for (let j = 0; j <= position; j++) acc += weights[j] * vCache[j * width + g * hd + i];
      out[h * hd + i] = acc / total;
    }
  }
  return out;
}
