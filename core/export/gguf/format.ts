/**
 * The GGUF v3 container (ggml's docs/gguf.md), written as a stream. A file is: the magic "GGUF", version 3, the
 * tensor count and the metadata count (u64), the metadata as typed key-value pairs, one info per tensor (name, its
 * dims in ggml order — ne[0] the innermost, the row length —, its ggml type, its data offset), zero padding to the
 * alignment, then each tensor's data, each padded to the alignment. Everything is little-endian.
 *
 * The header depends only on the metadata and on each tensor's dims and type, so it is written before any tensor
 * is read; each tensor's values are read only when its turn comes, encoded a few rows at a time, and let go before
 * the next one is read, so a file of gigabytes never sits whole in memory. Nothing here touches Node or the DOM: a
 * CLI sink writes to a file, a web worker's to an OPFS file or a Blob stream.
 */
import { ByteWriter, GgufError, type GgufMetadata, writeValue } from './metadata';
import { encodeRows, GGML_TYPE_NAMES, type GgmlType, rowBytes } from './quantize';

export {
  GgufError,
  type GgufMetadata,
  type GgufScalarType,
  type GgufValue,
  GgufValueType,
  gguf,
} from './metadata';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

export interface GgufTensor {
  /** llama.cpp's name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** ggml order: dims[0] is the row length (PyTorch's last dimension), e.g. [in, out] for a [out, in] weight. */
  dims: number[];
  type: GgmlType;
  /** The values in memory order (dims[0] fastest), read when the tensor's turn comes. */
  values: () => Promise<Float32Array>;
}

export interface GgufPlan {
  metadata: GgufMetadata;
  tensors: GgufTensor[];
}

export interface GgufProgress {
  tensorsDone: number;
  tensorsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** The tensor being written (its name), or null once all are. */
  tensor: string | null;
}

export interface GgufWriteOptions {
  onProgress?: (progress: GgufProgress) => void;
  /** Rows are encoded into chunks of about this many bytes (default 8 MiB). */
  chunkBytes?: number;
}

/** The padding that brings `n` bytes to a multiple of `alignment`. */
export function padding(n: number, alignment = GGUF_ALIGNMENT): number {
  return (alignment - (n % alignment)) % alignment;
}

/** How many bytes a tensor's data takes (before its padding). */
export function tensorBytes(tensor: Pick<GgufTensor, 'name' | 'dims' | 'type'>): number {
  const [rowLength, ...rest] = tensor.dims;
  if (tensor.dims.length === 0 || tensor.dims.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
    throw new GgufError(`tensor ${tensor.name}: dims [${tensor.dims}] are not positive integers`);
  }
  return rowBytes(tensor.type, rowLength, tensor.name) * rest.reduce((a, b) => a * b, 1);
}

export interface GgufLayout {
  /** Magic, counts, metadata, tensor infos and the padding after them: where the data starts. */
  header: Uint8Array;
  /** Each tensor's offset from the start of the data (aligned) and its size in bytes, in plan order. */
  tensors: { offset: number; bytes: number }[];
  /** The whole file. */
  totalBytes: number;
}

/** The header bytes and where each tensor's data goes, from the plan's metadata, dims and types alone. */
export function ggufLayout(plan: GgufPlan): GgufLayout {
  const alignment = alignmentOf(plan.metadata);
  const out = new ByteWriter();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(plan.tensors.length);
  out.u64(plan.metadata.size);
  for (const [key, value] of plan.metadata) {
    out.string(key);
    writeValue(out, key, value);
  }
  const names = new Set<string>();
  const tensors: GgufLayout['tensors'] = [];
  let offset = 0;
  for (const tensor of plan.tensors) {
    if (names.has(tensor.name)) throw new GgufError(`tensor ${tensor.name} appears twice`);
    names.add(tensor.name);
    const bytes = tensorBytes(tensor);
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    for (const d of tensor.dims) out.u64(d);
    out.u32(tensor.type);
    out.u64(offset);
    tensors.push({ offset, bytes });
    offset += bytes + padding(bytes, alignment);
  }
  out.zeros(padding(out.length, alignment));
  const header = out.result();
  return { header, tensors, totalBytes: header.length + offset };
}

function alignmentOf(metadata: GgufMetadata): number {
  const value = metadata.get('general.alignment');
  if (value === undefined) return GGUF_ALIGNMENT;
  if (value.type !== 'uint32' || value.value <= 0 || value.value % 8 !== 0) {
    throw new GgufError('general.alignment must be a uint32 multiple of 8');
  }
  return value.value;
}

/**
 * The file as chunks: the header first, then each tensor's data (read, encoded a few rows at a time, padded) in
 * plan order. `onProgress` hears each tensor start and each chunk.
 */
export async function* ggufChunks(plan: GgufPlan, options: GgufWriteOptions = {}): AsyncGenerator<Uint8Array> {
  const layout = ggufLayout(plan);
  const alignment = alignmentOf(plan.metadata);
  const chunkBytes = Math.max(1, options.chunkBytes ?? 8 << 20);
  const total = plan.tensors.length;
  let bytesDone = 0;
  const report = (tensorsDone: number, tensor: string | null) =>
    options.onProgress?.({ tensorsDone, tensorsTotal: total, bytesDone, bytesTotal: layout.totalBytes, tensor });

  report(0, plan.tensors[0]?.name ?? null);
  yield layout.header;
  bytesDone += layout.header.length;
  for (let t = 0; t < total; t++) {
    const tensor = plan.tensors[t];
    report(t, tensor.name);
    const values = await tensor.values();
    const [rowLength] = tensor.dims;
    const rows = layout.tensors[t].bytes / rowBytes(tensor.type, rowLength, tensor.name);
    if (values.length !== rows * rowLength) {
      throw new GgufError(`tensor ${tensor.name}: ${values.length} values do not fill dims [${tensor.dims}]`);
    }
    const rowsPerChunk = Math.max(1, Math.floor(chunkBytes / rowBytes(tensor.type, rowLength, tensor.name)));
    for (let row = 0; row < rows; row += rowsPerChunk) {
      const end = Math.min(rows, row + rowsPerChunk);
      const chunk = encodeRows(tensor.type, values.subarray(row * rowLength, end * rowLength), rowLength);
      yield chunk;
      bytesDone += chunk.length;
      report(t, tensor.name);
    }
    const pad = padding(layout.tensors[t].bytes, alignment);
    if (pad > 0) {
      yield new Uint8Array(pad);
      bytesDone += pad;
    }
  }
  report(total, null);
}

/** Writes the file into `sink`, chunk by chunk, awaiting each write; returns the bytes written. */
export async function writeGguf(
  plan: GgufPlan,
  sink: (chunk: Uint8Array) => void | Promise<void>,
  options: GgufWriteOptions = {},
): Promise<number> {
  let written = 0;
  for await (const chunk of ggufChunks(plan, options)) {
    await sink(chunk);
    written += chunk.length;
  }
  return written;
}

/** The file as a web ReadableStream (a Response body, a Blob, an OPFS file's pipeTo). */
export function ggufStream(plan: GgufPlan, options: GgufWriteOptions = {}): ReadableStream<Uint8Array> {
  const chunks = ggufChunks(plan, options);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await chunks.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await chunks.return(undefined);
    },
  });
}

/** A tensor's type as llama.cpp prints it (F32, F16, Q8_0). */
export function ggmlTypeName(type: GgmlType): string {
  return GGML_TYPE_NAMES[type];
}
