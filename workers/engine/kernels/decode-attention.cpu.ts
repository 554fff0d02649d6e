import type { DecodeShape } from './decode-attention';

/**
 * The CPU twin of decode attention: each row's query of the token at `position` against its cache rows
 * 0..position (per row position-major [cacheLength, KV * hd], position j at row j % cacheLength; the last `window`
 * of them where given), grouped-query heads sharing their key-value head.
 */
export function decodeAttentionCpu(
  q: ArrayLike<number>,
  kCache: ArrayLike<number>,
  vCache: ArrayLike<number>,
  position: number,
  s: DecodeShape,
): Float64Array {
  const { heads: H, kvHeads: KV, headDim: hd, maxLen, rows = 1 } = s;
  const cacheLen = s.cacheLength ?? maxLen;
  const scale = s.scale ?? 1 / Math.sqrt(hd);
  const first = s.window === undefined ? 0 : Math.max(0, position + 1 - s.window);
  const width = KV * hd;
  const out = new Float64Array(rows * H * hd);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < H; h++) {
      const cache = r * cacheLen * width + Math.floor(h / (H / KV)) * hd;
      const qi = (r * H + h) * hd;
      const scores = Array.from({ length: position + 1 }, (_, j) => {
        if (j < first) return Number.NEGATIVE_INFINITY;
        let dot = 0;
        for (let i = 0; i < hd; i++) dot += q[qi + i] * kCache[cache + (j % cacheLen) * width + i];
        return dot * scale;
      });
      const max = Math.max(...scores);
      const weights = scores.map((x) => Math.exp(x - max));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let i = 0; i < hd; i++) {
        let acc = 0;
        for (let j = first; j <= position; j++) acc += weights[j] * vCache[cache + (j % cacheLen) * width + i];
        out[qi + i] = acc / total;
      }
    }
  }
  return out;
}
