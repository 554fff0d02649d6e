import { describe, expect, it } from 'vitest';
import { bfloat16Bits, halfBits, packHalves, roundToHalf } from './float16';

describe('fp16 conversion', () => {
  it('encodes exact values, rounds to nearest even, and handles the edges', () => {
    expect(halfBits(1)).toBe(0x3c00);
    expect(halfBits(-2)).toBe(0xc000);
    expect(halfBits(0.5)).toBe(0x3800);
    expect(halfBits(65504)).toBe(0x7bff); // largest half
    expect(halfBits(1e6)).toBe(0x7c00); // overflow → inf
    expect(halfBits(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(halfBits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(halfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(halfBits(2 ** -26)).toBe(0); // rounds to zero
    expect(halfBits(-0)).toBe(0x8000);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(halfBits(1 + 2 ** -11)).toBe(0x3c00);
    expect(halfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    // Rounding up can carry into the exponent: 2047.9 → 2048.
    expect(halfBits(2047.9)).toBe(0x6800);
  });

  it('round trips through roundToHalf within half an fp16 step, and packs low half first', () => {
    const values = [0.1, -Math.PI, 1234.5, 6e-5, -7e-8];
    roundToHalf(values).forEach((v, i) => {
      expect(Math.abs(v - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -11 + 2 ** -25);
    });
    expect([...packHalves([1, -2, 0.5])]).toEqual([0xc000_3c00, 0x0000_3800]);
  });
});

describe('bfloat16 conversion', () => {
  it('keeps the top half, rounding to nearest even', () => {
    expect(bfloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16Bits(-2)).toBe(0xc000);
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
    expect(bfloat16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(bfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bfloat16Bits(Number.POSITIVE_INFINITY)).toBe(0x7f80);
    expect(bfloat16Bits(Number.NaN) & 0x7f80).toBe(0x7f80);
    expect(bfloat16Bits(Number.NaN) & 0x7f).not.toBe(0);
  });
});
