/**
 * ggml's tensor types that Hone writes, as bytes: F32, F16 (round to nearest even, as ggml's FP32_TO_FP16 and
 * numpy's astype(float16) round) and Q8_0 (ggml-quants.c quantize_row_q8_0_ref: blocks of 32 values along the row,
 * each an fp16 scale d = amax / 127 and 32 int8 q = roundf(x / d), 34 bytes; every step in float32 arithmetic as the C
 * code does it).
 */
import { halfBits } from '../../float16';

/** ggml's type ids (ggml.h enum ggml_type). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q8_0: 8,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export const GGML_TYPE_NAMES: Record<GgmlType, string> = { 0: 'F32', 1: 'F16', 8: 'Q8_0' };

/** Q8_0's block: 32 values, stored as an fp16 scale and 32 int8. */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** Whether a row of this length can be stored as `type` (Q8_0 needs whole blocks). */
export function fitsType(type: GgmlType, rowLength: number): boolean {
  return type !== GgmlType.Q8_0 || rowLength % Q8_0_BLOCK === 0;
}

/** Bytes one row of `rowLength` values takes as `type`. */
export function rowBytes(type: GgmlType, rowLength: number, name = 'tensor'): number {
  switch (type) {
    case GgmlType.F32:
      return 4 * rowLength;
    case GgmlType.F16:
      return 2 * rowLength;
    case GgmlType.Q8_0:
      if (!fitsType(type, rowLength)) {
        throw new Error(`${name}: rows of ${rowLength} values are not whole Q8_0 blocks of ${Q8_0_BLOCK}`);
      }
      return (rowLength / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
    default:
      throw new Error(`${name}: ggml type ${type} is not one Hone writes`);
  }
}

/** Whole rows of `values` (row length `rowLength`) encoded as `type`, little-endian. */
export function encodeRows(type: GgmlType, values: Float32Array, rowLength: number): Uint8Array {
  switch (type) {
    case GgmlType.F32: {
      const copy = new Float32Array(values);
      return new Uint8Array(copy.buffer);
    }
    case GgmlType.F16: {
      const halves = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) halves[i] = halfBits(values[i]);
      return new Uint8Array(halves.buffer);
    }
    case GgmlType.Q8_0:
      return quantizeQ8_0(values, rowLength);
    default:
      throw new Error(`ggml type ${type} is not one Hone writes`);
  }
}

/** quantize_row_q8_0_ref over whole rows: blocks never straddle rows, since rows are whole blocks. */
export function quantizeQ8_0(values: Float32Array, rowLength = values.length): Uint8Array {
  if (rowLength % Q8_0_BLOCK !== 0 || values.length % rowLength !== 0) {
    throw new Error(
      `Q8_0 needs rows of whole ${Q8_0_BLOCK}-value blocks, got ${values.length} values in rows of ${rowLength}`,
    );
  }
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const start = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(values[start + j]));
    // Float32 arithmetic: each double result of one float32 operation rounds to the float32 result.
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, halfBits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = Math.fround(values[start + j] * id);
      view.setInt8(at + 2 + j, roundHalfAway(x));
    }
  }
  return out;
}

/** C's roundf: halves away from zero (exact for float32 inputs, whose x + 0.5 a double holds exactly). */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}
