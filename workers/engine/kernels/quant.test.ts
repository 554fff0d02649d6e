import { describe, expect, it } from 'vitest';
import { quantBytes } from '../../../core/base-precision';
import { halfBits } from '../../../core/float16';
import { mulberry32 } from '../../../core/random';
import { dequantize, groupSize, NF4_LEVELS, QUANT_FORMATS, quantize, quantRefusal, quantWordCount } from './quant';

function normal(n: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => {
    const u = Math.max(next(), 1e-12);
    return 0.02 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  });
}

describe('quantized base matrices', () => {
  it('lays out a q8 row as bytes low-first, then a word with its fp16 scale max|row| / 127', () => {
    const words = quantize([1, -2, 0.5, 0.25, 0, 0, 0, 0], 2, 4, 'q8');
    expect(quantWordCount('q8', 2, 4)).toBe(4);
    // 2 / 127 = 0.015748 → fp16 0.01575 (bits 0x2408); codes round(w / s).
    const s = halfBits(2 / 127);
    const codes = [1, -2, 0.5, 0.25].map((w) => Math.round(w / 0.0157470703125) & 0xff);
    expect(codes).toEqual([64, 0x81, 32, 16]);
    expect(words[0]).toBe((codes[0] | (codes[1] << 8) | (codes[2] << 16) | (codes[3] << 24)) >>> 0);
    expect(words[1]).toBe(s);
    expect([words[2], words[3]]).toEqual([0, 0]);
    // The sizes the memory estimate counts: 6 rows of 128, a byte a weight and a scale word a row; half a byte a
    // weight and an fp16 scale per 32 (q4) or 64 (NF4).
    expect(QUANT_FORMATS.map((format) => quantBytes(format, 6, 128))).toEqual([6 * 128 + 24, 384 + 48, 384 + 24]);
  });

  it('puts q4 codes eight a word, low nibble first, the group scale from its largest weight with its sign', () => {
    const values = Float32Array.from({ length: 32 }, (_, i) => (i === 5 ? -1.6 : (i % 7) * 0.1));
    const words = quantize(values, 1, 32, 'q4');
    const back = dequantize(words, 1, 32, 'q4');
    // s = −1.6 / −8 = 0.2: the extreme is exact, at code 0.
    expect(back[5]).toBeCloseTo(-1.6, 3);
    expect((words[0] >>> 20) & 0xf).toBe(0);
    expect(back[1]).toBeCloseTo(0.2, 3);
    expect(back[2]).toBeCloseTo(0.2, 3);
  });

  it('round-trips random matrices within half a step of each format, at awkward row counts', () => {
    for (const format of QUANT_FORMATS) {
      for (const [rows, cols] of [
        [7, 64],
        [3, 192],
        [1, 128],
      ]) {
        const values = normal(rows * cols, rows * cols + format.length);
        const back = dequantize(quantize(values, rows, cols, format), rows, cols, format);
        const group = groupSize(format, cols);
        for (let g = 0; g < values.length / group; g++) {
          const slice = values.subarray(g * group, (g + 1) * group);
          const max = Math.max(...slice.map(Math.abs));
          // Half a step: s/2 for the grids (q4 a whole step on the side opposite its extreme), half NF4's widest gap (−1 to −0.696).
          const bound = { q8: max / 127 / 2, q4: max / 8, nf4: (max * (1 - 0.6961928009986877)) / 2 }[format];
          for (let i = g * group; i < (g + 1) * group; i++) {
            expect(Math.abs(back[i] - values[i])).toBeLessThanOrEqual(bound * 1.01 + 1e-7);
          }
        }
      }
    }
  });

  it('picks the nearest NF4 level, and keeps an all-zero group at zero', () => {
    const values = new Float32Array(64);
    values[0] = 1;
    NF4_LEVELS.forEach((level, i) => {
      values[i + 1] = level * 0.999;
    });
    const back = dequantize(quantize(values, 1, 64, 'nf4'), 1, 64, 'nf4');
    NF4_LEVELS.forEach((level, i) => {
      expect(back[i + 1]).toBeCloseTo(level, 6);
    });
    expect(Array.from(dequantize(quantize(new Float32Array(64), 1, 64, 'nf4'), 1, 64, 'nf4'))).toEqual(
      new Array(64).fill(0),
    );
  });

  it('refuses rows that are not whole groups and words', () => {
    expect(quantRefusal('q8', 6)).toBe('q8 needs rows of a multiple of 4 weights, not 6');
    expect(quantRefusal('q4', 48)).toBe('q4 needs rows of a multiple of 32 weights, not 48');
    expect(quantRefusal('nf4', 96)).toBe('nf4 needs rows of a multiple of 64 weights, not 96');
    expect(() => quantize(new Float32Array(96), 1, 96, 'nf4')).toThrow('nf4 needs rows of a multiple of 64');
  });
});
