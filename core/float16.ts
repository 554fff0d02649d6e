/**
 * fp32 → fp16 (IEEE binary16) conversion with round-to-nearest-even, for keeping frozen base weights on the
 * GPU at half the memory. The engine widens them back with WGSL's unpack2x16float.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // inf, NaN
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit bit in, round to nearest even.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (half + (rest > midpoint || (rest === midpoint && half & 1) ? 1 : 0));
  }
  const rest = mantissa & 0x1fff;
  let half = (e << 10) | (mantissa >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

/** Values as fp16, two per 32-bit word (little-endian: element 2i in the low half), as the GPU reads them. */
export function packHalves(values: ArrayLike<number>): Uint32Array<ArrayBuffer> {
  const halves = new Uint16Array(Math.ceil(values.length / 2) * 2);
  for (let i = 0; i < values.length; i++) halves[i] = halfBits(values[i]);
  return new Uint32Array(halves.buffer);
}

/** The fp16 value nearest to each value, as float64: what the GPU computes with after packHalves. */
export function roundToHalf(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfToFloat(halfBits(values[i]));
  return out;
}

function halfToFloat(h: number): number {
  u32[0] = f16BitsToF32Bits(h);
  return f32[0];
}

/** The float32 bit pattern of an fp16 bit pattern: exact, subnormals and NaNs included. */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return sign | 0x7f800000 | (mantissa << 13); // infinities and NaNs
  if (exponent !== 0) return sign | ((exponent + 112) << 23) | (mantissa << 13); // rebias 15 → 127
  if (mantissa === 0) return sign; // ±0
  // A subnormal (mantissa × 2^-24) is a normal float32: shift its leading 1 up to the implicit bit.
  let e = 113; // float32 exponent field of 2^-14
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mantissa & 0x3ff) << 13);
}

/** fp32 → bfloat16 bits (the top half of the float32, rounded to nearest even; NaN kept a NaN). */
export function bfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // NaN: keep it quiet and a NaN
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** The float32 whose bits these are. */
export function float32FromBits(bits: number): number {
  u32[0] = bits;
  return f32[0];
}
