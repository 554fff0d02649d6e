/**
 * Zips a person picks (an exported adapter, a model, a reward model) read lazily from a Blob: the end of central
 * directory record and the central directory first, from the zip's tail, then each entry only when it is asked
 * for. Nothing is inflated before its declared sizes pass the checks below, and nothing is inflated past them, so a
 * zip bomb is refused after kilobytes, not after gigabytes (issue 26).
 *
 * - Listing (`openZip`) refuses a zip whose entries could not be what they declare: data running past the
 *   central directory, entries sharing bytes (the overlapping-entries bomb), a method other than stored (0) or
 *   deflate (8), encryption, a declared size over the cap for its kind of file (`entryCap`), or a declared
 *   compression ratio past `maxRatio` (beyond `ratioFloorBytes`).
 * - Reading an entry (`ZipEntry.file`) compares its local header with the central directory, slices stored entries
 *   out of the zip (no copy), and inflates deflated ones in small pieces with a running count, stopping the moment
 *   the output passes the declared size, so memory stays near the entry's size and a lying header cannot make it
 *   more. A `.safetensors` entry's first bytes (the header) are checked against its declared size as soon as they
 *   are inflated, before the rest is.
 *
 * ZIP64 records (entries or directories past 4 GiB or 65535 entries) are read; zips split across several files
 * are refused. CRCs are not checked.
 */
import { Inflate } from 'fflate';
import type { ReadFile } from '../checkpoint';
import { SafetensorsError, safetensorsHeadLayout, safetensorsHeadLength } from '../safetensors';

const KiB = 2 ** 10;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

/**
 * The largest declared (uncompressed) size of each kind of file, the first that matches an entry's name: what
 * the largest real one is, with room to spare, so a header declaring more is a lie or an attack.
 */
export const ENTRY_CAPS: readonly { kind: string; matches: (name: string) => boolean; bytes: number }[] = [
  // tokenizer.json runs to tens of MB (Gemma 3's is 33 MB); tokenizer_config.json to a few MB with many added
  // tokens and a chat template.
  { kind: 'tokenizer file', matches: (name) => /^tokenizer.*\.json$/.test(name), bytes: 64 * MiB },
  // config.json, adapter_config.json, generation_config.json...: kilobytes, 100 KB for the largest label maps.
  {
    kind: 'config file',
    matches: (name) => name.endsWith('config.json') || name === 'special_tokens_map.json',
    bytes: 1 * MiB,
  },
  // ONNX models are protocol buffers, which cannot pass 2 GiB (larger ones keep their weights in external data).
  { kind: 'ONNX model', matches: (name) => name.endsWith('.onnx'), bytes: 2 * GiB },
  // The largest a model's weights file can be: 64 GiB holds a 34B-parameter model unsharded in bf16, past what one
  // GPU trains in a browser; the Hub shards checkpoints at 5 GB, so real files are far smaller.
  {
    kind: 'weights file',
    matches: (name) => /\.(safetensors|bin|pt|pth|ckpt|gguf|onnx_data|h5|msgpack)$/.test(name),
    bytes: 64 * GiB,
  },
  // Everything else (README.md, metrics.jsonl, vocab.json, merges.txt, model.safetensors.index.json...).
  { kind: 'file', matches: () => true, bytes: 256 * MiB },
];

export interface ZipLimits {
  /** A cap over every entry's, on top of `ENTRY_CAPS` (tests pass a small one). */
  maxEntryBytes: number;
  /**
   * The largest declared uncompressed:compressed ratio. Deflate's own maximum is 1032:1, reached only by runs of
   * one byte; weights compress to about 1.2:1, JSON and text to 3-10:1, so a file past 100:1 is no real file.
   */
  maxRatio: number;
  /** Entries declaring at most this many bytes skip the ratio check (a small file of one repeated byte is fine). */
  ratioFloorBytes: number;
}

export const ZIP_LIMITS: ZipLimits = { maxEntryBytes: Number.POSITIVE_INFINITY, maxRatio: 100, ratioFloorBytes: MiB };

/** The cap on an entry's declared size, and what kind of file it is taken for. */
export function entryCap(name: string, limits: ZipLimits = ZIP_LIMITS): { kind: string; bytes: number } {
  const base = name.split('/').at(-1)?.toLowerCase() ?? '';
  const { kind, bytes } = ENTRY_CAPS.find((cap) => cap.matches(base)) ?? ENTRY_CAPS[ENTRY_CAPS.length - 1];
  return { kind, bytes: Math.min(bytes, limits.maxEntryBytes) };
}

export const STORED = 0;
export const DEFLATE = 8;

/** One file of a zip, listed from the central directory and read when asked for. */
export interface ZipEntry {
  /** Its path, with the folder the zip wraps all its files in (if any) taken off. */
  path: string;
  /** Its name in the zip. */
  name: string;
  /** `STORED` (0) or `DEFLATE` (8): listing refuses the others. */
  method: number;
  compressedSize: number;
  /** Its declared uncompressed size, checked against its kind's cap and its compressed size. */
  size: number;
  /**
   * Its bytes: a stored entry a slice of the zip, a deflated one inflated (once; later calls get the same Blob)
   * with every check above. Rejects, naming the zip and the entry, when a header lies.
   */
  file(): Promise<Blob>;
}

/** The zip reader's refusals, each naming the zip, and the entry where one is at fault. */
export class ZipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipError';
  }
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_BYTES = 22;
const CENTRAL_BYTES = 46;
const LOCAL_BYTES = 30;
/** The central directory is read whole: even 100,000 files take under 10 MB. */
const MAX_DIRECTORY_BYTES = 64 * MiB;

const METHOD_NAMES: Record<number, string> = {
  1: 'shrink',
  6: 'implode',
  9: 'deflate64',
  12: 'bzip2',
  14: 'LZMA',
  93: 'Zstandard',
  95: 'XZ',
  98: 'PPMd',
  99: 'AES encryption',
};

interface CentralRecord {
  name: string;
  nameLength: number;
  flags: number;
  method: number;
  compressedSize: number;
  size: number;
  offset: number;
  /** Where its data must end: the next entry's local header, or the central directory. */
  end: number;
}

/**
 * The files a zip holds, listed from its central directory (read from the zip's tail: nothing is inflated), with
 * folders and macOS's `__MACOSX/` shadows left out and the folder they all sit in (if one) taken off their paths.
 * Refuses, naming `source`, something that is not a zip, a zip with no files, and entries that cannot be what they
 * declare (see the top of this file).
 */
export async function openZip(zip: Blob, source: string, limits: Partial<ZipLimits> = {}): Promise<ZipEntry[]> {
  const all = { ...ZIP_LIMITS, ...limits };
  const records = await readDirectory(zip, source);
  const kept = records.filter((r) => !r.name.endsWith('/') && !r.name.startsWith('__MACOSX/'));
  if (kept.length === 0) throw new ZipError(`${source}: the zip holds no files`);
  for (const record of kept) checkDeclared(record, source, all);
  const top = kept[0].name.split('/')[0];
  const wrapped = kept.every((r) => r.name.startsWith(`${top}/`));
  return kept.map((record) => {
    let blob: Promise<Blob> | null = null;
    return {
      path: wrapped ? record.name.slice(top.length + 1) : record.name,
      name: record.name,
      method: record.method,
      compressedSize: record.compressedSize,
      size: record.size,
      file: () => {
        blob ??= readEntry(zip, record, source);
        return blob;
      },
    };
  });
}

/**
 * A zipped folder as the files in it (see `openZip`), every one read: stored ones as slices of the zip, deflated
 * ones inflated one at a time with every check.
 */
export async function unzipFolder(
  zip: Blob | Uint8Array<ArrayBuffer>,
  source: string,
  limits: Partial<ZipLimits> = {},
): Promise<{ path: string; file: Blob }[]> {
  const entries = await openZip(zip instanceof Blob ? zip : new Blob([zip]), source, limits);
  const files: { path: string; file: Blob }[] = [];
  for (const entry of entries) files.push({ path: entry.path, file: await entry.file() });
  return files;
}

const isZip = (files: { path: string }[]) => files.length === 1 && files[0].path.toLowerCase().endsWith('.zip');

/** Files a person picked, with a single picked .zip opened into the files it holds, every one read. */
export async function expandZip(
  files: { path: string; file: Blob }[],
  limits: Partial<ZipLimits> = {},
): Promise<{ path: string; file: Blob }[]> {
  if (!isZip(files)) return files;
  return unzipFolder(files[0].file, files[0].path, limits);
}

/**
 * Files a person picked (a folder's, or a single .zip of one) as a ReadFile by file name, as the loaders take them:
 * a zip's entries are listed at once and each read only when asked for, so the files a loader never asks for are
 * never inflated.
 */
export async function pickedFilesReader(
  files: { path: string; file: Blob }[],
  limits: Partial<ZipLimits> = {},
): Promise<ReadFile> {
  const opened: { path: string; file: () => Promise<Blob> }[] = isZip(files)
    ? await openZip(files[0].file, files[0].path, limits)
    : files.map(({ path, file }) => ({ path, file: async () => file }));
  const byName = new Map(opened.map((f) => [f.path.split('/').at(-1) as string, f.file]));
  return async (name) => (await byName.get(name)?.()) ?? null;
}

// ---- the central directory ---------------------------------------------------------------------------------------

async function bytesAt(zip: Blob, start: number, length: number): Promise<DataView> {
  const buffer = await zip.slice(start, start + length).arrayBuffer();
  return new DataView(buffer);
}

/** A little-endian u64 that must fit a JavaScript number exactly. */
function u64(view: DataView, at: number, fail: (why: string) => Error): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`a size or offset of ${value} bytes`);
  return Number(value);
}

async function readDirectory(zip: Blob, source: string): Promise<CentralRecord[]> {
  const notZip = (why: string) => new ZipError(`${source}: not a zip file that can be read (${why})`);
  // The end record is the last 22 bytes, unless a comment (at most 65535 bytes) follows it.
  const tailStart = Math.max(0, zip.size - EOCD_BYTES - 0xffff);
  const tail = await bytesAt(zip, tailStart, zip.size - tailStart);
  let at = tail.byteLength - EOCD_BYTES;
  while (
    at >= 0 &&
    !(tail.getUint32(at, true) === EOCD && at + EOCD_BYTES + tail.getUint16(at + 20, true) <= tail.byteLength)
  ) {
    at--;
  }
  if (at < 0)
    throw notZip(`no end of central directory record in its last ${tail.byteLength} bytes: not a zip, or cut short`);
  const eocdOffset = tailStart + at;
  let disk = tail.getUint16(at + 4, true);
  let directoryDisk = tail.getUint16(at + 6, true);
  let entriesHere = tail.getUint16(at + 8, true);
  let entries = tail.getUint16(at + 10, true);
  let directorySize = tail.getUint32(at + 12, true);
  let directoryOffset = tail.getUint32(at + 16, true);
  let directoryEnd = eocdOffset;

  // ZIP64: a locator just before the end record points at the ZIP64 end record, whose fields replace the 16- and
  // 32-bit ones (which then read 0xffff / 0xffffffff). Without those, a locator that leads nowhere is ignored: its
  // signature was a directory's bytes by chance.
  const needs64 = entries === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff;
  if (eocdOffset >= 20) {
    const locator = at >= 20 ? new DataView(tail.buffer, at - 20, 20) : await bytesAt(zip, eocdOffset - 20, 20);
    const pointer = locator.getUint32(0, true) === EOCD64_LOCATOR ? locator.getBigUint64(8, true) : -1n;
    const offset = pointer <= BigInt(eocdOffset) ? Number(pointer) : -1;
    const record = offset >= 0 && offset + 56 <= eocdOffset - 20 ? await bytesAt(zip, offset, 56) : null;
    if (record === null || record.getUint32(0, true) !== EOCD64) {
      if (offset >= 0 && needs64) throw notZip('its ZIP64 end record is not where its locator says: cut short?');
    } else {
      if (locator.getUint32(16, true) > 1) throw notZip('it is split across several files');
      disk = record.getUint32(16, true);
      directoryDisk = record.getUint32(20, true);
      entriesHere = u64(record, 24, notZip);
      entries = u64(record, 32, notZip);
      directorySize = u64(record, 40, notZip);
      directoryOffset = u64(record, 48, notZip);
      directoryEnd = offset;
    }
  }
  if (disk !== 0 || directoryDisk !== 0 || entriesHere !== entries) throw notZip('it is split across several files');
  if (directoryOffset + directorySize > directoryEnd) {
    throw notZip(`its central directory (${directorySize} bytes at ${directoryOffset}) runs past its end: cut short?`);
  }
  if (directorySize > MAX_DIRECTORY_BYTES) {
    throw notZip(`a central directory of ${directorySize} bytes, over the ${MAX_DIRECTORY_BYTES}-byte limit`);
  }
  if (entries * CENTRAL_BYTES > directorySize) {
    throw notZip(`${entries} entries cannot fit a central directory of ${directorySize} bytes`);
  }

  const directory = await bytesAt(zip, directoryOffset, directorySize);
  const records: CentralRecord[] = [];
  let p = 0;
  for (let i = 0; i < entries; i++) {
    if (p + CENTRAL_BYTES > directorySize || directory.getUint32(p, true) !== CENTRAL) {
      throw notZip(`central directory entry ${i + 1} of ${entries} is damaged`);
    }
    const flags = directory.getUint16(p + 8, true);
    const method = directory.getUint16(p + 10, true);
    let compressedSize = directory.getUint32(p + 20, true);
    let size = directory.getUint32(p + 24, true);
    const nameLength = directory.getUint16(p + 28, true);
    const extraLength = directory.getUint16(p + 30, true);
    const commentLength = directory.getUint16(p + 32, true);
    const startDisk = directory.getUint16(p + 34, true);
    let offset = directory.getUint32(p + 42, true);
    const next = p + CENTRAL_BYTES + nameLength + extraLength + commentLength;
    if (next > directorySize) throw notZip(`central directory entry ${i + 1} of ${entries} is damaged`);
    const nameBytes = new Uint8Array(directory.buffer, p + CENTRAL_BYTES, nameLength);
    const name = decodeName(nameBytes, flags);
    const fail = (why: string) => new ZipError(`${source}: ${name}: ${why}`);

    const extra = zip64Extra(new DataView(directory.buffer, p + CENTRAL_BYTES + nameLength, extraLength));
    let e = 0;
    const wide = (field: string) => {
      if (extra === null || e + 8 > extra.byteLength)
        throw fail(`its ${field} needs a ZIP64 extra field, which is missing`);
      e += 8;
      return u64(extra, e - 8, (why) => fail(`${why} is past what can be read`));
    };
    if (size === 0xffffffff) size = wide('size');
    if (compressedSize === 0xffffffff) compressedSize = wide('compressed size');
    if (offset === 0xffffffff) offset = wide('offset');
    if (startDisk !== 0 && startDisk !== 0xffff) throw notZip('it is split across several files');
    records.push({ name, nameLength, flags, method, compressedSize, size, offset, end: directoryOffset });
    p = next;
  }

  // Every entry's local header and data must lie before the central directory and apart from the others': the
  // overlapping-entries bomb points many entries at one deflate stream.
  const byOffset = [...records].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < byOffset.length; i++) {
    const record = byOffset[i];
    const end = i + 1 < byOffset.length ? byOffset[i + 1].offset : directoryOffset;
    const fail = (why: string) => new ZipError(`${source}: ${record.name}: ${why}`);
    if (record.offset + LOCAL_BYTES + record.nameLength + record.compressedSize > directoryOffset) {
      throw fail(
        `its ${record.compressedSize} compressed bytes at ${record.offset} run past the zip's data: cut short?`,
      );
    }
    if (record.offset + LOCAL_BYTES + record.nameLength + record.compressedSize > end) {
      throw fail(`its data overlaps the next entry's, "${byOffset[i + 1].name}" (entries sharing bytes: a zip bomb?)`);
    }
    record.end = end;
  }
  return records;
}

/** The ZIP64 extended information extra field (0x0001) of an extra-field block, or null without one. */
function zip64Extra(extra: DataView): DataView | null {
  for (let at = 0; at + 4 <= extra.byteLength; ) {
    const id = extra.getUint16(at, true);
    const length = Math.min(extra.getUint16(at + 2, true), extra.byteLength - at - 4);
    if (id === 0x0001) return new DataView(extra.buffer, extra.byteOffset + at + 4, length);
    at += 4 + length;
  }
  return null;
}

/** UTF-8 when flagged (bit 11) or valid; otherwise the old single-byte code page, read as Latin-1. */
function decodeName(bytes: Uint8Array, flags: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(bytes);
  }
}

/** The checks of an entry's declared sizes and method, before any of it is read. */
function checkDeclared(record: CentralRecord, source: string, limits: ZipLimits): void {
  const { name, method, size, compressedSize } = record;
  const fail = (why: string) => new ZipError(`${source}: ${name}: ${why}`);
  if (record.flags & 0x41) throw fail('it is encrypted, which cannot be read');
  if (method !== STORED && method !== DEFLATE) {
    const known = METHOD_NAMES[method] ? ` (${METHOD_NAMES[method]})` : '';
    throw fail(`it is compressed with method ${method}${known}; only stored (0) and deflate (8) can be read`);
  }
  if (method === STORED && size !== compressedSize) {
    throw fail(`it is stored, yet declares ${size} bytes in ${compressedSize}`);
  }
  const cap = entryCap(name, limits);
  if (size > cap.bytes) {
    throw fail(`it declares ${showBytes(size)}, over the ${showBytes(cap.bytes)} a ${cap.kind} can be`);
  }
  if (size > limits.ratioFloorBytes && size > compressedSize * limits.maxRatio) {
    const ratio = compressedSize === 0 ? '∞' : Math.round(size / compressedSize);
    throw fail(
      `it declares ${showBytes(size)} from ${showBytes(compressedSize)} compressed (${ratio}:1), past the ` +
        `${limits.maxRatio}:1 a real file stays under: a zip bomb?`,
    );
  }
}

function showBytes(n: number): string {
  if (n < 10 * KiB) return `${n} bytes`;
  const [unit, scale] = n >= GiB ? ['GiB', GiB] : n >= MiB ? ['MiB', MiB] : ['KiB', KiB];
  return `${n} bytes (${(n / scale).toFixed(1)} ${unit})`;
}

// ---- reading an entry ---------------------------------------------------------------------------------------------

async function readEntry(zip: Blob, record: CentralRecord, source: string): Promise<Blob> {
  const { name, method, size, compressedSize } = record;
  const fail = (why: string) => new ZipError(`${source}: ${name}: ${why}`);
  const local = await bytesAt(zip, record.offset, LOCAL_BYTES);
  if (local.getUint32(0, true) !== LOCAL) throw fail(`no local header at ${record.offset}, where the directory says`);
  const flags = local.getUint16(6, true);
  const localMethod = local.getUint16(8, true);
  const nameLength = local.getUint16(26, true);
  const extraLength = local.getUint16(28, true);
  if (localMethod !== method) {
    throw fail(`its local header says method ${localMethod}, the central directory ${method}`);
  }
  // With a data descriptor (bit 3) the local sizes are left 0 and written after the data; without one they must be
  // the central directory's.
  if (!(flags & 0x8)) {
    let localCompressed = local.getUint32(18, true);
    let localSize = local.getUint32(22, true);
    if (localSize === 0xffffffff || localCompressed === 0xffffffff) {
      // A local ZIP64 field holds both sizes, the uncompressed first.
      const extra = zip64Extra(await bytesAt(zip, record.offset + LOCAL_BYTES + nameLength, extraLength));
      if (extra === null || extra.byteLength < 16) throw fail('its local header lacks its ZIP64 sizes');
      const tooLarge = (why: string) => fail(`${why} is past what can be read`);
      if (localSize === 0xffffffff) localSize = u64(extra, 0, tooLarge);
      if (localCompressed === 0xffffffff) localCompressed = u64(extra, 8, tooLarge);
    }
    if (localSize !== size || localCompressed !== compressedSize) {
      throw fail(
        `its local header says ${localSize} bytes from ${localCompressed} compressed, the central directory ` +
          `${size} from ${compressedSize}`,
      );
    }
  }
  const start = record.offset + LOCAL_BYTES + nameLength + extraLength;
  if (start + compressedSize > record.end) {
    throw fail(`its data (${compressedSize} bytes at ${start}) runs into what follows it`);
  }
  if (method === STORED) return zip.slice(start, start + size);
  return inflateEntry(zip.slice(start, start + compressedSize), record, source);
}

/** Deflate's largest output per input byte (runs of 258 bytes at two bits each). */
const MAX_DEFLATE_RATIO = 1032;
/** Inflated output is gathered into Blobs of this size, so it is held once, not once in pieces and again whole. */
const BLOB_PART_BYTES = 4 * MiB;
/** Compressed bytes are read from the zip this many at a time. */
const READ_BYTES = MiB;

/**
 * A deflated entry inflated with a running count. Compressed bytes are pushed in pieces small enough that one
 * piece cannot carry the output far past the declared size (at most ~4 MiB past, since deflate's ratio is bounded):
 * the count stops it there. A `.safetensors` entry's header is checked against the declared size as soon as it is
 * out.
 */
async function inflateEntry(data: Blob, record: CentralRecord, source: string): Promise<Blob> {
  const { name, size } = record;
  const fail = (why: string) => new ZipError(`${source}: ${name}: ${why}`);
  const head = name.toLowerCase().endsWith('.safetensors') ? new SafetensorsHead(size, `${source}: ${name}`) : null;
  const parts: Blob[] = [];
  let pending: Uint8Array<ArrayBuffer>[] = [];
  let pendingBytes = 0;
  let produced = 0;
  const inflater = new Inflate((chunk) => {
    produced += chunk.length;
    if (produced > size) throw fail(`it inflates past the ${size} bytes its header declares: the header lies`);
    head?.add(chunk);
    pending.push(chunk as Uint8Array<ArrayBuffer>);
    pendingBytes += chunk.length;
    if (pendingBytes >= BLOB_PART_BYTES) {
      parts.push(new Blob(pending));
      pending = [];
      pendingBytes = 0;
    }
  });
  const push = (piece: Uint8Array, final: boolean) => {
    try {
      inflater.push(piece, final);
    } catch (error) {
      if (error instanceof ZipError || error instanceof SafetensorsError) throw error;
      throw fail(`its deflated data is damaged (${(error as Error).message})`);
    }
  };
  // Read in slices rather than through data.stream(): Node streams an in-memory Blob as one chunk, whole.
  for (let offset = 0; offset < data.size; offset += READ_BYTES) {
    const value = new Uint8Array(await data.slice(offset, offset + READ_BYTES).arrayBuffer());
    for (let at = 0; at < value.length; ) {
      // Pieces small enough that one cannot carry the output more than ~4 MiB past the declared size, and 1 KiB
      // (~1 MiB of output) while a safetensors header is still unchecked.
      const [least, most] = head?.checked === false ? [KiB, KiB] : [4 * KiB, 64 * KiB];
      const step = Math.min(most, Math.max(least, Math.floor((size - produced) / MAX_DEFLATE_RATIO)));
      push(value.subarray(at, at + step), false);
      at += step;
    }
  }
  push(new Uint8Array(0), true);
  if (produced !== size) throw fail(`it inflates to ${produced} bytes, not the ${size} its header declares`);
  parts.push(new Blob(pending));
  return new Blob(parts);
}

/** A safetensors file's first bytes gathered as they are inflated, its header checked once they are all out. */
class SafetensorsHead {
  /** The first 8 bytes (the header's length), then the first 8 + that length. */
  private bytes = new Uint8Array(8);
  private filled = 0;
  private lengthRead = false;
  checked = false;

  constructor(
    private readonly size: number,
    private readonly source: string,
  ) {
    safetensorsHeadLength(new Uint8Array(0), size, source); // a file under 8 bytes is refused at once
  }

  add(chunk: Uint8Array): void {
    for (let at = 0; !this.checked && at < chunk.length; ) {
      const n = Math.min(this.bytes.length - this.filled, chunk.length - at);
      this.bytes.set(chunk.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (!this.lengthRead && this.filled === 8) {
        const bytes = new Uint8Array(safetensorsHeadLength(this.bytes, this.size, this.source));
        bytes.set(this.bytes);
        this.bytes = bytes;
        this.lengthRead = true;
      }
      if (this.lengthRead && this.filled === this.bytes.length) {
        safetensorsHeadLayout(this.bytes, this.size, this.source);
        this.checked = true;
        this.bytes = new Uint8Array(0);
      }
    }
  }
}
