import { describe, expect, it } from 'vitest';
import {
  MAX_HEADER_BYTES,
  openSafetensors,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
} from './safetensors';

const SOURCE = 'weights.safetensors';

/** A file with this header text (unpadded) and these data bytes, length prefix written byte by byte. */
function file(header: string, data: ArrayLike<number> = []): Uint8Array {
  const json = new TextEncoder().encode(header);
  const n = json.length;
  return Uint8Array.from([
    n & 0xff,
    (n >> 8) & 0xff,
    (n >> 16) & 0xff,
    n >>> 24,
    0,
    0,
    0,
    0,
    ...json,
    ...Array.from(data),
  ]);
}

/** A header entry, written as JSON text. */
const entry = (dtype: string, shape: unknown, offsets: unknown) =>
  `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;

function rejects(bytes: Uint8Array, ...fragments: string[]): SafetensorsError {
  let error: unknown;
  try {
    parseSafetensors(bytes, SOURCE);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SafetensorsError);
  const message = (error as Error).message;
  expect(message.startsWith(`${SOURCE}: `)).toBe(true);
  for (const fragment of fragments) expect(message).toContain(fragment);
  return error as SafetensorsError;
}

const bitsOf = (values: Float32Array) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

describe('parseSafetensors on files built by hand', () => {
  it('reads a file laid out byte by byte as the spec describes, tensors at unaligned offsets', () => {
    const header =
      `{"__metadata__":{"format":"pt"},"w":${entry('F32', [2], [0, 8])},"h":${entry('F16', [1, 2], [8, 12])},` +
      `"b":${entry('BF16', [], [12, 14])},"i":${entry('I64', [1], [14, 22])}}`;
    // Space padding (allowed after the JSON) makes the data start 1 past a multiple of 4: every tensor is unaligned.
    let text = header;
    while ((8 + text.length) % 4 !== 1) text += ' ';
    const data = [
      ...[0x00, 0x00, 0x80, 0x3f], // 1.0f
      ...[0x00, 0x00, 0x20, 0xc0], // -2.5f
      ...[0x00, 0x3c], // f16 1.0
      ...[0x00, 0xc0], // f16 -2.0
      ...[0x49, 0x40], // bf16 3.140625
      ...[1, 0, 0, 0, 0, 0, 0, 0], // i64 1
    ];
    const parsed = parseSafetensors(file(text, data), SOURCE);
    expect(parsed.metadata).toEqual({ format: 'pt' });
    expect([...parsed.tensors.keys()]).toEqual(['w', 'h', 'b', 'i']);
    const dataStart = 8 + text.length;
    expect(parsed.tensors.get('h')).toEqual({ dtype: 'F16', shape: [1, 2], byteOffset: dataStart + 8, byteLength: 4 });
    expect(Array.from(parsed.readFloat32('w'))).toEqual([1, -2.5]);
    expect(Array.from(parsed.readFloat32('h'))).toEqual([1, -2]);
    expect(Array.from(parsed.readFloat32('b'))).toEqual([3.140625]);
    expect(parsed.tensors.get('i')?.shape).toEqual([1]);
  });

  it('reads a file whose bytes sit at an odd offset in a larger buffer', () => {
    const inner = file(`{"x":${entry('F32', [1], [0, 4])}}`, [0x00, 0x00, 0x40, 0x40]);
    const outer = new Uint8Array(inner.length + 3);
    outer.set(inner, 3);
    expect(Array.from(parseSafetensors(outer.subarray(3), SOURCE).readFloat32('x'))).toEqual([3]);
  });

  it('accepts an empty file, scalars and tensors with a zero dimension', () => {
    expect(parseSafetensors(file('{}'), SOURCE).tensors.size).toBe(0);
    const parsed = parseSafetensors(
      file(`{"e":${entry('F32', [0, 5], [0, 0])},"s":${entry('F32', [], [0, 4])}}`, [0, 0, 0x80, 0xbf]),
      SOURCE,
    );
    expect(parsed.readFloat32('e')).toHaveLength(0);
    expect(Array.from(parsed.readFloat32('s'))).toEqual([-1]);
  });
});

describe('readFloat32 widening', () => {
  function widen(dtype: 'F16' | 'BF16', halves: number[]): Float32Array {
    const data = halves.flatMap((h) => [h & 0xff, h >> 8]);
    return parseSafetensors(file(`{"t":${entry(dtype, [halves.length], [0, data.length])}}`, data), SOURCE).readFloat32(
      't',
    );
  }

  it('widens F16 exactly: normals, subnormals, zeros, infinities and NaNs', () => {
    const cases: Array<[number, number]> = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x5640, 100],
      [0x7bff, 65504], // largest finite
      [0x0400, 2 ** -14], // smallest normal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x8001, -(2 ** -24)],
      [0x7c00, Number.POSITIVE_INFINITY],
      [0xfc00, Number.NEGATIVE_INFINITY],
    ];
    const out = widen(
      'F16',
      cases.map(([h]) => h),
    );
    expect(Array.from(out)).toEqual(cases.map(([, v]) => v));
    const [negativeZero] = widen('F16', [0x8000]);
    expect(Object.is(negativeZero, -0)).toBe(true);
    // Quiet and signalling NaNs keep their sign and payload bits.
    expect(bitsOf(widen('F16', [0x7e00, 0xfe00, 0x7c01]))).toEqual([0x7fc00000, 0xffc00000, 0x7f802000]);
  });

  it('agrees with the float16 definition on all 65536 bit patterns', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h);
    const out = widen('F16', all);
    for (const h of all) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >> 10) & 0x1f;
      const mantissa = h & 0x3ff;
      const expected =
        exponent === 0
          ? sign * mantissa * 2 ** -24
          : exponent === 31
            ? mantissa === 0
              ? sign * Number.POSITIVE_INFINITY
              : Number.NaN
            : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
      if (!Object.is(out[h], expected)) expect([h, out[h]]).toEqual([h, expected]);
    }
  });

  it('widens BF16 exactly', () => {
    const out = widen('BF16', [0x3f80, 0xbf80, 0x4049, 0x3eab, 0x0001, 0x7f80, 0xff80, 0x0000]);
    expect(Array.from(out)).toEqual([
      1,
      -1,
      3.140625,
      0.333984375,
      2 ** -133, // a float32 subnormal
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0,
    ]);
    expect(Object.is(widen('BF16', [0x8000])[0], -0)).toBe(true);
    expect(bitsOf(widen('BF16', [0x7fc0, 0xffc1]))).toEqual([0x7fc00000, 0xffc10000]);
  });

  it('refuses to read other dtypes, or a tensor that is not there, as float', () => {
    const parsed = parseSafetensors(file(`{"ids":${entry('I64', [1], [0, 8])}}`, new Uint8Array(8)), SOURCE);
    expect(() => parsed.readFloat32('ids')).toThrow(SafetensorsError);
    expect(() => parsed.readFloat32('ids')).toThrow(/weights\.safetensors: tensor "ids": dtype I64 cannot be read/);
    expect(() => parsed.readFloat32('nope')).toThrow(/tensor "nope": no such tensor/);
  });
});

describe('parseSafetensors on hostile files', () => {
  const lengthPrefix = (n: bigint) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, n, true);
    return bytes;
  };

  it('refuses a file shorter than the length prefix', () => {
    rejects(new Uint8Array(5), '5 bytes is too short');
  });

  it('refuses header lengths past the end of the file or over the cap', () => {
    rejects(Uint8Array.from([...lengthPrefix(100n), ...new TextEncoder().encode('{}')]), 'runs past the end');
    rejects(lengthPrefix(2n ** 64n - 1n), '18446744073709551615', 'limit');
    rejects(lengthPrefix(BigInt(MAX_HEADER_BYTES + 1)), 'limit');
    // 2^53 + 1 would round to 2^53 as a number: the cap must be checked on the exact value.
    rejects(lengthPrefix(2n ** 53n + 1n), '9007199254740993');
  });

  it('refuses headers that are not UTF-8 JSON objects', () => {
    rejects(Uint8Array.from([...lengthPrefix(2n), 0x7b, 0xff]), 'not valid UTF-8');
    rejects(file('{"a":'), 'not valid JSON');
    rejects(file('[1, 2]'), 'not a JSON object');
    rejects(file('\ufeff{}'), 'not a JSON object');
    rejects(file('{} x'), 'not valid JSON');
  });

  it('refuses bad __metadata__', () => {
    rejects(file('{"__metadata__":{"epoch":3}}'), '__metadata__', '"epoch"');
    rejects(file('{"__metadata__":["pt"]}'), '__metadata__');
  });

  it('refuses an entry that is not an object, or an unknown dtype', () => {
    rejects(file('{"w":[1]}'), 'tensor "w"', 'entry must be an object');
    rejects(file(`{"w":${entry('F7', [1], [0, 1])}}`, [0]), 'tensor "w"', 'unknown dtype "F7"', 'BF16');
    // A dtype named like an Object.prototype property is still unknown.
    rejects(file(`{"w":${entry('constructor', [1], [0, 1])}}`, [0]), 'tensor "w"', 'unknown dtype');
  });

  it('refuses shapes that are not arrays of non-negative integers', () => {
    for (const shape of [[-1], [1.5], '3', [[1]], null, [2 ** 53]]) {
      rejects(file(`{"w":${entry('U8', shape, [0, 1])}}`, [0]), 'tensor "w"', 'shape must be an array');
    }
    rejects(file('{"w":{"dtype":"U8","data_offsets":[0,1]}}', [0]), 'tensor "w"', 'shape');
  });

  it('refuses data_offsets that are malformed or outside the data', () => {
    const data = new Uint8Array(8);
    rejects(file(`{"w":${entry('F32', [2], [0, 100])}}`, data), 'tensor "w"', '[0, 100]', 'outside the 8 bytes');
    rejects(file(`{"w":${entry('F32', [2], [8, 0])}}`, data), 'tensor "w"', 'outside');
    rejects(file(`{"w":${entry('F32', [2], [0])}}`, data), 'tensor "w"', 'data_offsets must be');
    rejects(file(`{"w":${entry('F32', [2], [-8, 0])}}`, data), 'tensor "w"', 'data_offsets must be');
    rejects(file('{"w":{"dtype":"F32","shape":[2]}}', data), 'tensor "w"', 'data_offsets must be');
  });

  it('refuses a byte range that does not match shape × dtype size', () => {
    rejects(file(`{"w":${entry('F32', [3], [0, 8])}}`, new Uint8Array(8)), 'tensor "w"', 'needs 12 bytes', 'hold 8');
  });

  it('refuses shapes whose element count overflows', () => {
    rejects(
      file(`{"w":${entry('F32', [2 ** 26, 2 ** 26, 2 ** 26], [0, 4])}}`, new Uint8Array(4)),
      'tensor "w"',
      'overflows',
    );
    rejects(file(`{"w":${entry('F64', [2 ** 51], [0, 8])}}`, new Uint8Array(8)), 'tensor "w"', 'overflows');
  });

  it('refuses overlapping tensors, holes and bytes that belong to no tensor', () => {
    const twelve = new Uint8Array(12);
    rejects(
      file(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [2], [4, 12])}}`, twelve),
      'tensor "b"',
      'overlap',
      '"a"',
    );
    rejects(file(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [2], [0, 8])}}`, new Uint8Array(8)), 'overlap');
    rejects(file(`{"a":${entry('F32', [1], [0, 4])},"b":${entry('F32', [1], [8, 12])}}`, twelve), 'tensor "b"', 'hole');
    rejects(file(`{"a":${entry('F32', [1], [0, 4])}}`, new Uint8Array(8)), 'last 4 bytes');
    rejects(file('{}', [0]), 'last 1 bytes');
  });

  it('names the tensor in a SafetensorsError', () => {
    const error = rejects(file(`{"model.norm.weight":${entry('F32', [3], [0, 8])}}`, new Uint8Array(8)));
    expect(error.source).toBe(SOURCE);
    expect(error.tensor).toBe('model.norm.weight');
  });
});

describe('serializeSafetensors', () => {
  it('writes exactly the bytes the spec prescribes', () => {
    const header = `{"attn0":${entry('F32', [1, 1, 2, 3], [0, 24])}}`;
    expect(header.length).toBe(65);
    const expected = Uint8Array.from([
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0, // header length, padded from 65 to 72
      ...new TextEncoder().encode(header),
      ...[32, 32, 32, 32, 32, 32, 32], // spaces up to an 8-byte boundary
      ...[0, 0, 0, 0], // 0.0f
      ...[0, 0, 0x80, 0x3f], // 1.0f
      ...[0, 0, 0, 0x40], // 2.0f
      ...[0, 0, 0x40, 0x40], // 3.0f
      ...[0, 0, 0x80, 0x40], // 4.0f
      ...[0, 0, 0xa0, 0x40], // 5.0f
    ]);
    const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
    expect(serializeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data }])).toEqual(expected);
    expect(serializeSafetensors(new Map())).toEqual(
      Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]),
    );
  });

  it('round-trips tensors, metadata and special values through parseSafetensors', () => {
    const tensors = new Map([
      [
        'b.weight',
        { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1, -0, Number.NaN, 1e-45, -Infinity, 3.5]) },
      ],
      ['a', { dtype: 'F32' as const, shape: [1], data: Float32Array.from([7]) }],
      ['0', { dtype: 'F32' as const, shape: [0], data: new Float32Array(0) }],
      ['__proto__', { dtype: 'F32' as const, shape: [], data: Float32Array.from([2]) }],
    ]);
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'hé' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const parsed = parseSafetensors(bytes, SOURCE);
    expect(parsed.metadata).toEqual({ format: 'pt', note: 'hé' });
    expect(new Set(parsed.tensors.keys())).toEqual(new Set(tensors.keys()));
    for (const [name, tensor] of tensors) {
      const info = parsed.tensors.get(name);
      expect(info?.shape).toEqual(tensor.shape);
      expect(info?.dtype).toBe('F32');
      expect((info?.byteOffset ?? 1) % 4).toBe(0);
      expect(bitsOf(parsed.readFloat32(name))).toEqual(bitsOf(tensor.data));
    }
  });

  it('writes tensors of a subarray, and in the order given', () => {
    const backing = Float32Array.from([9, 1, 2, 9]);
    const bytes = serializeSafetensors([
      { name: 'z', dtype: 'F32', shape: [2], data: backing.subarray(1, 3) },
      { name: 'y', dtype: 'F32', shape: [1], data: backing.subarray(0, 1) },
    ]);
    const parsed = parseSafetensors(bytes, SOURCE);
    expect(Array.from(parsed.readFloat32('z'))).toEqual([1, 2]);
    expect(parsed.tensors.get('z')?.byteOffset).toBeLessThan(parsed.tensors.get('y')?.byteOffset ?? 0);
  });

  it('refuses shapes that do not match the data, and repeated or reserved names', () => {
    const data = new Float32Array(6);
    expect(() => serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [2, 2], data }])).toThrow(/"w" has shape/);
    expect(() =>
      serializeSafetensors([
        { name: 'w', dtype: 'F32', shape: [6], data },
        { name: 'w', dtype: 'F32', shape: [6], data },
      ]),
    ).toThrow(/repeated name "w"/);
    expect(() => serializeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [6], data }])).toThrow(
      /__metadata__/,
    );
  });
});

describe('openSafetensors (a Blob, read tensor by tensor)', () => {
  it('reads the same tensors as parseSafetensors, and checks the header just as strictly', async () => {
    const bytes = serializeSafetensors([
      { name: 'a', dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
      { name: 'b', dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc000) },
    ]);
    const file = await openSafetensors(new Blob([bytes as Uint8Array<ArrayBuffer>]), 'm.safetensors');
    expect([...file.tensors.keys()]).toEqual(['a', 'b']);
    expect(await file.readFloat32('a')).toEqual(parseSafetensors(bytes, 'm').readFloat32('a'));
    expect(await file.readFloat32('b')).toEqual(Float32Array.of(1, -2));
    await expect(file.readFloat32('c')).rejects.toThrow('m.safetensors: tensor "c": no such tensor');
    const cut = new Blob([bytes.slice(0, bytes.length - 4)]);
    await expect(openSafetensors(cut, 'cut.safetensors')).rejects.toThrow(/cut\.safetensors/);
    await expect(openSafetensors(new Blob([bytes.slice(0, 5)]), 'tiny')).rejects.toThrow(/too short/);
  });
});
