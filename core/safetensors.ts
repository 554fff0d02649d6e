/**
 * The safetensors format (https://github.com/huggingface/safetensors#format): an 8-byte little-endian u64 header
 * length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}`, then
 * the tensor data, with offsets relative to the start of the data. The reader makes every check the reference
 * Rust reader makes, so a file it accepts is one PyTorch accepts too, and a hostile file fails with a message that
 * names the file and the tensor.
 *
 * Tensor bytes are read through typed arrays, which use the host's byte order: every platform with WebGPU is
 * little-endian, like the format.
 */

import { f16BitsToF32Bits } from './float16';

/** Bytes per element of each dtype the format defines with whole bytes (the sub-byte F4/F6 types are not read). */
const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

/** The reference reader's cap: a larger header is an attack on memory, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Where the tensor's bytes lie in the file: absolute, past the header (data_offsets are relative to the data). */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsLayout {
  source: string;
  /** In the order of the header. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export interface SafetensorsFile extends SafetensorsLayout {
  /** A fresh float32 copy of a tensor: F32 copied, F16 and BF16 widened exactly. Other dtypes throw. */
  readFloat32(name: string): Float32Array;
}

/** The same, for a file read tensor by tensor from a Blob. */
export interface SafetensorsBlob extends SafetensorsLayout {
  readFloat32(name: string): Promise<Float32Array>;
}

export class SafetensorsError extends Error {
  constructor(
    readonly source: string,
    readonly tensor: string | null,
    detail: string,
  ) {
    super(tensor === null ? `${source}: ${detail}` : `${source}: tensor "${tensor}": ${detail}`);
    this.name = 'SafetensorsError';
  }
}

export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const fail = failer(source);
  const layout = parseLayout(bytes.subarray(0, 8), (n) => bytes.subarray(8, 8 + n), bytes.length, source);
  return {
    ...layout,
    readFloat32(name) {
      const info = tensorInfo(layout, name);
      // slice() copies into a fresh, aligned buffer, whatever the alignment of the tensor in the file.
      return decodeFloat32(bytes.slice(info.byteOffset, info.byteOffset + info.byteLength).buffer, info, name, fail);
    },
  };
}

/**
 * A safetensors file kept as a Blob (a download in the browser's cache, a file on disk): only the header is
 * read up front, and each tensor when asked for, so a multi-gigabyte checkpoint never sits whole in memory.
 */
export async function openSafetensors(blob: Blob, source: string): Promise<SafetensorsBlob> {
  const fail = failer(source);
  const first = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
  const headerLength = checkHeaderLength(first, blob.size, fail);
  const header = new Uint8Array(await blob.slice(8, 8 + headerLength).arrayBuffer());
  const layout = parseLayout(first, () => header, blob.size, source);
  return {
    ...layout,
    async readFloat32(name) {
      const info = tensorInfo(layout, name);
      const raw = await blob.slice(info.byteOffset, info.byteOffset + info.byteLength).arrayBuffer();
      return decodeFloat32(raw, info, name, fail);
    },
  };
}

/**
 * For a file still arriving (a zip entry being inflated) whose length is known, `fileLength`: how many of its
 * first bytes the header check needs, given the `first` bytes already at hand. Fewer than 8 at hand: 8 (a file
 * under 8 bytes throws at once); 8 or more: 8 plus the header's length, which throws if that length is over the
 * limit or runs past the file.
 */
export function safetensorsHeadLength(first: Uint8Array, fileLength: number, source: string): number {
  const fail = failer(source);
  if (first.length < 8) {
    if (fileLength < 8) checkHeaderLength(first, fileLength, fail);
    return 8;
  }
  return 8 + checkHeaderLength(first, fileLength, fail);
}

/**
 * Every check `openSafetensors` makes of the header, from the file's first `safetensorsHeadLength` bytes alone,
 * against a file of `fileLength` bytes: the JSON parses, every tensor's data_offsets end within the file, and the
 * tensors cover its data exactly, so a file whose header describes less (or more) than its length is refused
 * before the rest of it is read.
 */
export function safetensorsHeadLayout(head: Uint8Array, fileLength: number, source: string): SafetensorsLayout {
  return parseLayout(head.subarray(0, 8), (n) => head.subarray(8, 8 + n), fileLength, source);
}

function failer(source: string) {
  return (detail: string, tensor: string | null = null) => new SafetensorsError(source, tensor, detail);
}

/** The header's length from the first 8 bytes, checked against the file's length. */
function checkHeaderLength(first: Uint8Array, fileLength: number, fail: Fail): number {
  if (fileLength < 8) throw fail(`${fileLength} bytes is too short for a safetensors file (at least 8)`);
  // Read as BigInt: a hostile u64 above 2^53 would otherwise round to something plausible.
  const headerLength64 = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true);
  if (headerLength64 > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${headerLength64} is over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(headerLength64);
  if (8 + headerLength > fileLength) {
    throw fail(`header length ${headerLength} runs past the end of the ${fileLength}-byte file`);
  }
  return headerLength;
}

/** Every check of the header against the file: JSON, dtypes, shapes, offsets in range, data fully covered. */
function parseLayout(
  first: Uint8Array,
  headerBytes: (length: number) => Uint8Array,
  fileLength: number,
  source: string,
): SafetensorsLayout {
  const fail = failer(source);
  const headerLength = checkHeaderLength(first, fileLength, fail);
  const dataStart = 8 + headerLength;
  const header = parseHeaderJson(headerBytes(headerLength), fail);
  const dataLength = fileLength - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') metadata = parseMetadata(entry, fail);
    else tensors.set(name, parseTensorInfo(name, entry, dataStart, dataLength, fail));
  }
  checkCoverage(tensors, dataStart, dataLength, fail);
  return { source, tensors, metadata };
}

function tensorInfo(layout: SafetensorsLayout, name: string): TensorInfo {
  const info = layout.tensors.get(name);
  if (info === undefined) throw new SafetensorsError(layout.source, name, 'no such tensor in the file');
  return info;
}

/** A tensor's bytes as float32: F32 as is, F16 and BF16 widened exactly; other dtypes refused. */
function decodeFloat32(raw: ArrayBuffer, info: TensorInfo, name: string, fail: Fail): Float32Array {
  switch (info.dtype) {
    case 'F32':
      return new Float32Array(raw);
    case 'F16':
      return widen(new Uint16Array(raw), f16Table());
    case 'BF16':
      return widen(new Uint16Array(raw), null);
    default:
      throw fail(`dtype ${info.dtype} cannot be read as float32 (only F32, F16 and BF16 can)`, name);
  }
}

type Fail = (detail: string, tensor?: string | null) => SafetensorsError;

function parseHeaderJson(headerBytes: Uint8Array, fail: Fail): Record<string, unknown> {
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, so it fails the '{' check as it does in the reference reader.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw fail('header is not a JSON object (it must start with "{")');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw fail(`header is not valid JSON: ${(error as Error).message}`);
  }
  // A text that starts with '{' and parses is an object.
  return header as Record<string, unknown>;
}

function parseMetadata(entry: unknown, fail: Fail): Record<string, string> {
  if (!isRecord(entry)) throw fail('__metadata__ must be an object of strings');
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') throw fail(`__metadata__ value of "${key}" must be a string, got ${show(value)}`);
  }
  return entry as Record<string, string>;
}

function parseTensorInfo(name: string, entry: unknown, dataStart: number, dataLength: number, fail: Fail): TensorInfo {
  if (!isRecord(entry)) throw fail(`entry must be an object, got ${show(entry)}`, name);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    throw fail(`unknown dtype ${show(dtype)} (known: ${Object.keys(DTYPE_SIZES).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    throw fail(`shape must be an array of non-negative integers, got ${show(shape)}`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    throw fail(`data_offsets must be [begin, end], two non-negative integers, got ${show(offsets)}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLength) {
    throw fail(`data_offsets [${begin}, ${end}] lie outside the ${dataLength} bytes of data`, name);
  }
  let count = 1;
  for (const dim of shape as number[]) {
    count *= dim;
    // Monotonic rounding keeps this test exact: a true product above 2^53 - 1 never rounds below it.
    if (count > Number.MAX_SAFE_INTEGER) throw fail(`shape ${show(shape)} overflows the element count`, name);
  }
  const expected = count * DTYPE_SIZES[dtype as Dtype];
  if (expected > Number.MAX_SAFE_INTEGER) throw fail(`shape ${show(shape)} overflows the byte count`, name);
  if (end - begin !== expected) {
    throw fail(
      `shape ${show(shape)} of ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      name,
    );
  }
  return { dtype: dtype as Dtype, shape: shape as number[], byteOffset: dataStart + begin, byteLength: end - begin };
}

/** The spec forbids holes and overlaps: sorted by offset, each tensor starts where the previous one ends. */
function checkCoverage(tensors: Map<string, TensorInfo>, dataStart: number, dataLength: number, fail: Fail) {
  const sorted = [...tensors].sort(
    ([, a], [, b]) => a.byteOffset - b.byteOffset || a.byteOffset + a.byteLength - (b.byteOffset + b.byteLength),
  );
  let cursor = 0;
  let previous: string | null = null;
  for (const [name, info] of sorted) {
    const begin = info.byteOffset - dataStart;
    if (begin < cursor) throw fail(`data_offsets overlap those of tensor "${previous}"`, name);
    if (begin > cursor) throw fail(`data bytes ${cursor}..${begin} before it belong to no tensor (a hole)`, name);
    cursor = begin + info.byteLength;
    previous = name;
  }
  if (cursor !== dataLength) throw fail(`the last ${dataLength - cursor} bytes of data belong to no tensor`);
}

/** Float32 bit patterns written straight from 16-bit ones: exact, NaN payloads included. */
function widen(halves: Uint16Array, table: Uint32Array | null): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  if (table === null) {
    // bfloat16 is the top half of a float32.
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  } else {
    for (let i = 0; i < halves.length; i++) bits[i] = table[halves[i]];
  }
  return out;
}

let f16ToF32Bits: Uint32Array | null = null;

/** All 65536 float16 patterns as float32 bits (256 KiB), built on first use: a lookup beats branching per value. */
function f16Table(): Uint32Array {
  if (f16ToF32Bits === null) {
    f16ToF32Bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16ToF32Bits[h] = f16BitsToF32Bits(h);
  }
  return f16ToF32Bits;
}

export interface F32Tensor {
  dtype: 'F32';
  shape: readonly number[];
  data: Float32Array;
}

/** 16-bit floats as their raw bits (bf16 checkpoints, fp16 exports). */
export interface Half16Tensor {
  dtype: 'BF16' | 'F16';
  shape: readonly number[];
  data: Uint16Array;
}

export type WritableTensor = F32Tensor | Half16Tensor;

/**
 * A safetensors file holding `tensors` in the order given. The header is padded with spaces to a multiple of 8
 * bytes, as the reference writer does, so every tensor starts 4-byte aligned and can be viewed in place.
 */
export function serializeSafetensors(
  tensors: Array<WritableTensor & { name: string }> | Map<string, WritableTensor>,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const entries: Array<[string, WritableTensor]> =
    tensors instanceof Map ? [...tensors] : tensors.map((tensor) => [tensor.name, tensor]);
  // Written by hand rather than with JSON.stringify(object): an object would move integer-like names first and
  // treat a tensor named "__proto__" as its prototype.
  const fields: string[] = [];
  if (metadata !== undefined) fields.push(`"__metadata__":${JSON.stringify(metadata)}`);
  const names = new Set<string>();
  let offset = 0;
  for (const [name, { dtype, shape, data }] of entries) {
    if (name === '__metadata__' || names.has(name))
      throw new Error(`serializeSafetensors: bad or repeated name "${name}"`);
    names.add(name);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!shape.every(isIndex) || count !== data.length) {
      throw new Error(`serializeSafetensors: "${name}" has shape [${shape}] but ${data.length} values`);
    }
    fields.push(
      `${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + data.byteLength] })}`,
    );
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, { data }] of entries) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIndex(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A value for an error message, cut short: hostile headers can hold megabytes. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
