/**
 * GGUF's typed metadata values and the little-endian byte writer the header is built with. Strings are a u64 byte
 * length and UTF-8 bytes; a value is its u32 type id then the value; an array is its element type, a u64 count and
 * the elements.
 */

/** GGUF's metadata value types, by their ids in the file. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

export type GgufScalarType = 'uint32' | 'int32' | 'float32';

/** A metadata value: what llama.cpp's converter writes uses only these. */
export type GgufValue =
  | { type: 'string'; value: string }
  | { type: GgufScalarType; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'strings'; value: readonly string[] }
  | { type: 'array'; of: GgufScalarType; value: ArrayLike<number> };

/** Metadata in the order it is written; a Map, so a key appears once. */
export type GgufMetadata = Map<string, GgufValue>;

export const gguf = {
  string: (value: string): GgufValue => ({ type: 'string', value }),
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  strings: (value: readonly string[]): GgufValue => ({ type: 'strings', value }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', of: 'int32', value }),
  u32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', of: 'uint32', value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', of: 'float32', value }),
};

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

const SCALAR_IDS: Record<GgufScalarType, number> = {
  uint32: GgufValueType.UINT32,
  int32: GgufValueType.INT32,
  float32: GgufValueType.FLOAT32,
};

/** Little-endian bytes, grown as written. */
export class ByteWriter {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  i32(value: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, value, true);
    this.length += 4;
  }

  f32(value: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, value, true);
    this.length += 4;
  }

  u64(value: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(value), true);
    this.length += 8;
  }

  u8(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** A GGUF string: u64 byte length, then UTF-8 bytes, no terminator. */
  string(text: string): void {
    const bytes = utf8.encode(text);
    this.u64(bytes.length);
    this.bytes(bytes);
  }

  zeros(n: number): void {
    this.reserve(n);
    this.buffer.fill(0, this.length, this.length + n);
    this.length += n;
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

const utf8 = new TextEncoder();

function checkScalar(key: string, type: GgufScalarType, value: number): void {
  const ok =
    type === 'float32'
      ? typeof value === 'number'
      : Number.isInteger(value) &&
        (type === 'uint32' ? value >= 0 && value <= 0xffffffff : value >= -0x80000000 && value <= 0x7fffffff);
  if (!ok) throw new GgufError(`metadata ${key}: ${value} is not a ${type}`);
}

function writeScalar(out: ByteWriter, type: GgufScalarType, value: number): void {
  if (type === 'uint32') out.u32(value);
  else if (type === 'int32') out.i32(value);
  else out.f32(value);
}

export function writeValue(out: ByteWriter, key: string, value: GgufValue): void {
  switch (value.type) {
    case 'string':
      out.u32(GgufValueType.STRING);
      out.string(value.value);
      return;
    case 'bool':
      out.u32(GgufValueType.BOOL);
      out.u8(value.value ? 1 : 0);
      return;
    case 'strings':
      out.u32(GgufValueType.ARRAY);
      out.u32(GgufValueType.STRING);
      out.u64(value.value.length);
      for (const s of value.value) out.string(s);
      return;
    case 'array':
      out.u32(GgufValueType.ARRAY);
      out.u32(SCALAR_IDS[value.of]);
      out.u64(value.value.length);
      for (let i = 0; i < value.value.length; i++) {
        checkScalar(`${key}[${i}]`, value.of, value.value[i]);
        writeScalar(out, value.of, value.value[i]);
      }
      return;
    default:
      checkScalar(key, value.type, value.value);
      out.u32(SCALAR_IDS[value.type]);
      writeScalar(out, value.type, value.value);
  }
}
