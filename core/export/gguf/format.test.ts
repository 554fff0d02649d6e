import { GGMLQuantizationType, GGUFValueType, gguf as parseGguf } from '@huggingface/gguf';
import { describe, expect, it } from 'vitest';
import { f16BitsToF32Bits, halfBits } from '../../float16';
import { type GgufPlan, type GgufTensor, gguf, ggufChunks, ggufLayout, writeGguf } from './format';
import { GgmlType, quantizeQ8_0 } from './quantize';

/** The whole file in memory (tests only: the writer itself never holds it). */
async function ggufBytes(plan: GgufPlan, chunkBytes?: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeGguf(plan, (chunk) => void chunks.push(chunk), { chunkBytes });
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Parses the bytes with @huggingface/gguf, served to it as an HTTP server would, by Range. */
async function parseBytes(bytes: Uint8Array) {
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('range') ?? '');
    const [start, end] = range
      ? [Number(range[1]), Math.min(Number(range[2]), bytes.length - 1)]
      : [0, bytes.length - 1];
    return new Response(bytes.slice(start, end + 1), {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${end}/${bytes.length}` },
    });
  };
  return parseGguf('https://hone.invalid/model.gguf', { fetch: fetch as typeof globalThis.fetch, typedMetadata: true });
}

/** A tensor's bytes in the file, from the parsed infos. */
function tensorData(bytes: Uint8Array, parsed: Awaited<ReturnType<typeof parseBytes>>, name: string) {
  const index = parsed.tensorInfos.findIndex((t) => t.name === name);
  if (index < 0) throw new Error(`no tensor ${name}`);
  const start = Number(parsed.tensorDataOffset + parsed.tensorInfos[index].offset);
  return bytes.subarray(start);
}

/** fp16 bits as a number, plainly. */
function halfValue(bits: number): number {
  const f = new Float32Array(new Uint32Array([f16BitsToF32Bits(bits)]).buffer);
  return f[0];
}

/** Q8_0 blocks back to values: x = d · q, d the block's fp16 scale. */
function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < count / 32; b++) {
    const d = halfValue(view.getUint16(b * 34, true));
    for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(b * 34 + 2 + j);
  }
  return out;
}

function seeded(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

const tensor = (name: string, dims: number[], type: GgmlType, values: Float32Array): GgufTensor => ({
  name,
  dims,
  type,
  values: async () => values,
});

describe('GGUF writer', () => {
  const vector = seeded(7, 1);
  const half = seeded(5 * 3, 2, 4);
  const blocks = seeded(96 * 3, 3, 2); // three rows of three blocks
  const cube = seeded(33 * 2 * 2, 4);
  const plan: GgufPlan = {
    metadata: new Map([
      ['general.architecture', gguf.string('llama')],
      ['general.name', gguf.string('tést ✓')],
      ['test.u32', gguf.u32(4_000_000_000)],
      ['test.i32', gguf.i32(-7)],
      ['test.f32', gguf.f32(1e-5)],
      ['test.bool', gguf.bool(true)],
      ['test.strings', gguf.strings(['a', '', 'ü b'])],
      ['test.i32s', gguf.i32s([1, -2, 3])],
      ['test.f32s', gguf.f32s([0.5, -1.25])],
      ['general.alignment', gguf.u32(32)],
    ]),
    tensors: [
      tensor('vector', [7], GgmlType.F32, vector),
      tensor('half', [5, 3], GgmlType.F16, half),
      tensor('blocks', [96, 3], GgmlType.Q8_0, blocks),
      tensor('cube', [33, 2, 2], GgmlType.F32, cube),
    ],
  };

  it('writes metadata, tensor infos and aligned data that @huggingface/gguf reads back', async () => {
    const bytes = await ggufBytes(plan);
    expect(bytes.length).toBe(ggufLayout(plan).totalBytes);
    const parsed = await parseBytes(bytes);
    const { metadata, typedMetadata } = parsed;
    expect(metadata.version).toBe(3);
    expect(metadata.tensor_count).toBe(4n);
    expect(metadata.kv_count).toBe(10n);
    expect(typedMetadata['general.name']).toEqual({ value: 'tést ✓', type: GGUFValueType.STRING });
    expect(typedMetadata['test.u32']).toEqual({ value: 4_000_000_000, type: GGUFValueType.UINT32 });
    expect(typedMetadata['test.i32']).toEqual({ value: -7, type: GGUFValueType.INT32 });
    expect(typedMetadata['test.f32'].type).toBe(GGUFValueType.FLOAT32);
    expect(typedMetadata['test.f32'].value).toBeCloseTo(1e-5, 10);
    expect(typedMetadata['test.bool']).toEqual({ value: true, type: GGUFValueType.BOOL });
    expect(typedMetadata['test.strings']).toMatchObject({ value: ['a', '', 'ü b'], subType: GGUFValueType.STRING });
    expect(typedMetadata['test.i32s']).toMatchObject({ value: [1, -2, 3], subType: GGUFValueType.INT32 });
    expect(typedMetadata['test.f32s']).toMatchObject({ value: [0.5, -1.25], subType: GGUFValueType.FLOAT32 });

    expect(parsed.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype])).toEqual([
      ['vector', [7], GGMLQuantizationType.F32],
      ['half', [5, 3], GGMLQuantizationType.F16],
      ['blocks', [96, 3], GGMLQuantizationType.Q8_0],
      ['cube', [33, 2, 2], GGMLQuantizationType.F32],
    ]);
    expect(parsed.tensorDataOffset % 32n).toBe(0n);
    // Each tensor starts aligned, right after the one before it and its padding.
    const offsets = parsed.tensorInfos.map((t) => Number(t.offset));
    expect(offsets).toEqual([0, 32, 64, 64 + 9 * 34 + padTo32(9 * 34)]); // 28 → 32, 30 → 32, 306 → 320
    expect(bytes.length).toBe(Number(parsed.tensorDataOffset) + offsets[3] + 33 * 4 * 4 + padTo32(33 * 4 * 4));

    expect(new Float32Array(tensorData(bytes, parsed, 'vector').slice(0, 28).buffer)).toEqual(vector);
    expect(new Float32Array(tensorData(bytes, parsed, 'cube').slice(0, 33 * 16).buffer)).toEqual(cube);
  });

  it('stores F16 as the nearest half, ties to even', async () => {
    const values = new Float32Array([1, -2.5, 65504, 1e-8, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1]);
    const bytes = await ggufBytes({ metadata: new Map(), tensors: [tensor('h', [8], GgmlType.F16, values)] });
    const parsed = await parseBytes(bytes);
    const halves = new Uint16Array(tensorData(bytes, parsed, 'h').slice(0, 16).buffer);
    expect([...halves].map(halfValue)).toEqual([1, -2.5, 65504, 0, 2 ** -24, 1, 1 + 4 * 2 ** -11, 0.0999755859375]);
    // A round trip through F16 moves no value by more than half a unit in the last place.
    const file = await ggufBytes({ metadata: new Map(), tensors: [tensor('x', [15], GgmlType.F16, half)] });
    const back = new Uint16Array(tensorData(file, await parseBytes(file), 'x').slice(0, 30).buffer);
    for (let i = 0; i < half.length; i++) {
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(half[i]))) - 10);
      expect(Math.abs(halfValue(back[i]) - half[i])).toBeLessThanOrEqual(ulp / 2);
    }
  });

  it('writes the same bytes however small the chunks, the header before any tensor is read', async () => {
    const whole = await ggufBytes(plan);
    expect(await ggufBytes(plan, 7)).toEqual(whole);
    let reads = 0;
    const counted: GgufPlan = {
      metadata: plan.metadata,
      tensors: plan.tensors.map((t) => ({
        ...t,
        values: () => {
          reads++;
          return t.values();
        },
      })),
    };
    const chunks = ggufChunks(counted);
    const header = await chunks.next();
    expect(reads).toBe(0);
    expect(header.value).toEqual(whole.subarray(0, ggufLayout(plan).header.length));
    await chunks.next();
    expect(reads).toBe(1);
    await chunks.return(undefined);
  });

  it('reports progress by tensor and byte', async () => {
    const seen: { tensorsDone: number; bytesDone: number; bytesTotal: number; tensor: string | null }[] = [];
    const total = await writeGguf(plan, () => {}, { onProgress: (p) => seen.push(p), chunkBytes: 64 });
    expect(seen.at(-1)).toEqual({ tensorsDone: 4, tensorsTotal: 4, bytesDone: total, bytesTotal: total, tensor: null });
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i].tensorsDone).toBeGreaterThanOrEqual(seen[i - 1].tensorsDone);
      expect(seen[i].bytesDone).toBeGreaterThanOrEqual(seen[i - 1].bytesDone);
    }
    expect(new Set(seen.map((p) => p.tensor))).toEqual(new Set(['vector', 'half', 'blocks', 'cube', null]));
  });

  it('refuses what it cannot write', async () => {
    const write = (tensors: GgufTensor[]) => ggufBytes({ metadata: new Map(), tensors });
    await expect(write([tensor('q', [33], GgmlType.Q8_0, seeded(33, 1))])).rejects.toThrow(/q: rows of 33 values/);
    await expect(
      write([tensor('a', [2], GgmlType.F32, seeded(2, 1)), tensor('a', [2], GgmlType.F32, seeded(2, 1))]),
    ).rejects.toThrow(/a appears twice/);
    await expect(write([tensor('short', [4, 2], GgmlType.F32, seeded(7, 1))])).rejects.toThrow(
      /short: 7 values do not fill dims \[4,2\]/,
    );
    await expect(ggufBytes({ metadata: new Map([['k', gguf.u32(-1)]]), tensors: [] })).rejects.toThrow(
      /k: -1 is not a uint32/,
    );
  });
});

function padTo32(n: number): number {
  return (32 - (n % 32)) % 32;
}

describe('Q8_0', () => {
  it('matches quantize_row_q8_0_ref: d = amax / 127 as fp16, q = roundf(x / d), halves away from zero', () => {
    // amax 127 gives d = 1 exactly: q is x rounded, .5 away from zero.
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.49999997, -0.5, 1.5, -126.5, 3]);
    const bytes = quantizeQ8_0(x);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer);
    expect(halfValue(view.getUint16(0, true))).toBe(1);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((j) => view.getInt8(2 + j))).toEqual([127, 3, -3, 0, -1, 2, -127, 3]);
    // An all-zero block: d = 0, every q 0.
    expect([...quantizeQ8_0(new Float32Array(32))]).toEqual(new Array(34).fill(0));
  });

  it('dequantizes to within half a step of each value, at awkward sizes and scales', () => {
    for (const [rows, rowLength, scale] of [
      [1, 32, 1],
      [3, 96, 1e-3],
      [5, 64, 300],
      [2, 160, 7],
    ]) {
      const values = seeded(rows * rowLength, rows * 31 + rowLength, scale);
      values[5] = 0; // a zero inside a block
      const back = dequantizeQ8_0(quantizeQ8_0(values, rowLength), values.length);
      for (let b = 0; b < values.length / 32; b++) {
        const block = values.subarray(b * 32, b * 32 + 32);
        const d = Math.fround(Math.max(...block.map(Math.abs)) / 127);
        const stored = halfValue(halfBits(d)); // fp16: tiny scales lose precision as subnormals
        for (let j = 0; j < 32; j++) {
          // half a step, plus the fp16 rounding of d times at most 127 steps
          const bound = 0.5 * d + 127 * Math.abs(d - stored);
          expect(Math.abs(back[b * 32 + j] - block[j])).toBeLessThanOrEqual(bound * (1 + 1e-6));
        }
      }
      expect(back[5]).toBe(0);
    }
  });
});
