/**
 * Zips written byte by byte for the zip reader's tests: honest ones (stored, deflated, ZIP64) and bombs, whose
 * headers lie or whose deflate streams inflate to gigabytes from megabytes. Nothing large is ever written: a bomb's
 * stream is one 1 MiB run of zeros, deflated once, repeated.
 */
import { constants, crc32, deflateRawSync } from 'node:zlib';

export interface RawEntry {
  name: string;
  /** The bytes as the zip holds them (already deflated for method 8). */
  data: Uint8Array;
  /** 0 stored, 8 deflate, or any other number for a method the reader refuses. */
  method: number;
  /** The uncompressed size the central directory declares. */
  size: number;
  /** The local header's sizes, where they should disagree with the central directory's. */
  localSize?: number;
  localCompressedSize?: number;
  /** General-purpose flags (bit 0: encrypted, bit 3: sizes in a data descriptor, bit 11: UTF-8 name). */
  flags?: number;
  crc?: number;
}

/** A file stored as it is. */
export function stored(name: string, bytes: Uint8Array): RawEntry {
  return { name, data: bytes, method: 0, size: bytes.length, crc: crc32(bytes) };
}

/** A file deflated. */
export function deflated(name: string, bytes: Uint8Array): RawEntry {
  return { name, data: new Uint8Array(deflateRawSync(bytes)), method: 8, size: bytes.length, crc: crc32(bytes) };
}

/** One MiB of zeros as a deflate stream that is not final and ends at a full flush: repeatable as it is. */
let zeroUnit: Uint8Array | null = null;

/**
 * A raw deflate stream inflating to `prefix` and then `mib` MiB of zeros: about 1 KB per MiB (1011:1), so 16 GiB
 * costs 16 MB of compressed bytes, built in milliseconds.
 */
export function zerosDeflate(mib: number, prefix: Uint8Array = new Uint8Array(0)): Uint8Array {
  zeroUnit ??= new Uint8Array(
    deflateRawSync(new Uint8Array(2 ** 20), { level: 9, finishFlush: constants.Z_FULL_FLUSH }),
  );
  const head = new Uint8Array(deflateRawSync(prefix, { finishFlush: constants.Z_FULL_FLUSH }));
  const out = new Uint8Array(head.length + zeroUnit.length * mib + 2);
  out.set(head);
  for (let i = 0; i < mib; i++) out.set(zeroUnit, head.length + i * zeroUnit.length);
  // An empty final block (fixed Huffman, end of block only).
  out.set([0x03, 0x00], out.length - 2);
  return out;
}

/**
 * A zip of `entries` in order, with ZIP64 records (the 32-bit fields all 0xffffffff, the values in ZIP64 extra
 * fields, a ZIP64 end record and its locator) when `zip64`.
 */
export function writeZip(entries: RawEntry[], options: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const zip64 = options.zip64 ?? false;
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let at = 0;
  const add = (bytes: Uint8Array) => {
    parts.push(bytes);
    at += bytes.length;
  };
  for (const entry of entries) {
    const name = new TextEncoder().encode(entry.name);
    const flags = entry.flags ?? 0x800;
    const localSize = entry.localSize ?? entry.size;
    const localCompressed = entry.localCompressedSize ?? entry.data.length;
    const offset = at;

    const localExtra = zip64 ? extra64([localSize, localCompressed]) : new Uint8Array(0);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, zip64 ? 45 : 20, true);
    local.setUint16(6, flags, true);
    local.setUint16(8, entry.method, true);
    local.setUint32(14, entry.crc ?? 0, true);
    local.setUint32(18, zip64 ? 0xffffffff : localCompressed, true);
    local.setUint32(22, zip64 ? 0xffffffff : localSize, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, localExtra.length, true);
    add(new Uint8Array(local.buffer));
    add(name);
    add(localExtra);
    add(entry.data);

    const centralExtra = zip64 ? extra64([entry.size, entry.data.length, offset]) : new Uint8Array(0);
    const header = new DataView(new ArrayBuffer(46));
    header.setUint32(0, 0x02014b50, true);
    header.setUint16(4, zip64 ? 45 : 20, true);
    header.setUint16(6, zip64 ? 45 : 20, true);
    header.setUint16(8, flags, true);
    header.setUint16(10, entry.method, true);
    header.setUint32(16, entry.crc ?? 0, true);
    header.setUint32(20, zip64 ? 0xffffffff : entry.data.length, true);
    header.setUint32(24, zip64 ? 0xffffffff : entry.size, true);
    header.setUint16(28, name.length, true);
    header.setUint16(30, centralExtra.length, true);
    header.setUint32(42, zip64 ? 0xffffffff : offset, true);
    central.push(new Uint8Array(header.buffer), name, centralExtra);
  }
  const directoryOffset = at;
  for (const bytes of central) add(bytes);
  const directorySize = at - directoryOffset;

  if (zip64) {
    const record = new DataView(new ArrayBuffer(56));
    record.setUint32(0, 0x06064b50, true);
    record.setBigUint64(4, 44n, true);
    record.setUint16(12, 45, true);
    record.setUint16(14, 45, true);
    record.setBigUint64(24, BigInt(entries.length), true);
    record.setBigUint64(32, BigInt(entries.length), true);
    record.setBigUint64(40, BigInt(directorySize), true);
    record.setBigUint64(48, BigInt(directoryOffset), true);
    const recordOffset = at;
    add(new Uint8Array(record.buffer));
    const locator = new DataView(new ArrayBuffer(20));
    locator.setUint32(0, 0x07064b50, true);
    locator.setBigUint64(8, BigInt(recordOffset), true);
    locator.setUint32(16, 1, true);
    add(new Uint8Array(locator.buffer));
  }
  const comment = new TextEncoder().encode(options.comment ?? '');
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, zip64 ? 0xffff : entries.length, true);
  end.setUint16(10, zip64 ? 0xffff : entries.length, true);
  end.setUint32(12, zip64 ? 0xffffffff : directorySize, true);
  end.setUint32(16, zip64 ? 0xffffffff : directoryOffset, true);
  end.setUint16(20, comment.length, true);
  add(new Uint8Array(end.buffer));
  add(comment);

  const out = new Uint8Array(at);
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/** A ZIP64 extended information extra field holding `values` as u64s. */
function extra64(values: number[]): Uint8Array {
  const view = new DataView(new ArrayBuffer(4 + 8 * values.length));
  view.setUint16(0, 0x0001, true);
  view.setUint16(2, 8 * values.length, true);
  values.forEach((value, i) => {
    view.setBigUint64(4 + 8 * i, BigInt(value), true);
  });
  return new Uint8Array(view.buffer);
}

/** A safetensors header (its 8-byte length and JSON) for one F32 tensor of `floats` values, without the data. */
export function safetensorsHead(floats: number): Uint8Array {
  const json = new TextEncoder().encode(
    JSON.stringify({ w: { dtype: 'F32', shape: [floats], data_offsets: [0, 4 * floats] } }),
  );
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}
