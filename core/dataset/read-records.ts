/**
 * A dataset file into raw records, streamed: JSONL line by line, JSON (an array, or an object holding a list),
 * CSV / TSV through papaparse, Parquet row group by row group through hyparquet, and plain text (.txt / .md) as one
 * document. A record that cannot be read becomes an issue naming its line; a file that cannot be read as a dataset
 * at all throws a DatasetFileError naming the file.
 */
import { parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import Papa from 'papaparse';

export interface DatasetFile {
  name: string;
  blob: Blob;
}

/** One record as the file holds it: an object (JSON, a CSV row, a Parquet row) or a plain text document. */
export interface RawRecord {
  /** 1-based: the line for JSONL, CSV and text; the record's index for JSON and Parquet. */
  line: number;
  value: Record<string, unknown> | string;
}

export interface RecordIssue {
  line: number;
  reason: string;
}

export type RawItem = { record: RawRecord } | { issue: RecordIssue };

export class DatasetFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetFileError';
  }
}

export type FileKind = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'text';

export interface ReadLimits {
  /**
   * Streamed files (JSONL, text, Parquet) are read up to this many bytes of records and the rest is reported as
   * left out; JSON and CSV must be parsed whole, so larger ones are refused. A browser tab holds the records.
   */
  maxBytes: number;
}

export const DEFAULT_LIMITS: ReadLimits = { maxBytes: 256 * 2 ** 20 };

export interface ReadProgress {
  bytesRead: number;
  totalBytes: number;
}

export interface ReadOptions {
  limits?: ReadLimits;
  onProgress?: (progress: ReadProgress) => void;
  /** Called when the reader stops early at the byte limit: what was left out, in words. */
  onTruncated?: (notice: string) => void;
}

const EXTENSIONS: Record<string, FileKind> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
  tsv: 'tsv',
  parquet: 'parquet',
  txt: 'text',
  md: 'text',
  markdown: 'text',
};

export function fileKind(name: string): FileKind {
  const extension = name.toLowerCase().split('.').pop() ?? '';
  const kind = EXTENSIONS[extension];
  if (!kind || !name.includes('.')) {
    throw new DatasetFileError(
      `${name}: Hone reads .jsonl, .json, .csv, .tsv, .parquet, .txt and .md files; this one's type is unknown`,
    );
  }
  return kind;
}

function megabytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GB` : `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/** Refuses what is plainly not text before decoding it: UTF-16 (a byte-order mark) and binary files (NUL bytes). */
async function checkLooksLikeText(file: DatasetFile): Promise<void> {
  const head = new Uint8Array(await file.blob.slice(0, 4096).arrayBuffer());
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    throw new DatasetFileError(`${file.name}: the file is UTF-16 text; save it as UTF-8 and drop it again`);
  }
  if (head.includes(0)) {
    throw new DatasetFileError(`${file.name}: this is a binary file, not text (it holds NUL bytes)`);
  }
}

/**
 * The file's text in decoded pieces, strictly UTF-8 (a byte-order mark is dropped). An invalid byte throws a
 * DatasetFileError naming the line it was on; `lineAt` says which line the text read so far has reached.
 */
async function* textPieces(
  file: DatasetFile,
  maxBytes: number,
  options: ReadOptions,
  lineAt: () => number,
): AsyncGenerator<string> {
  await checkLooksLikeText(file);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const reader = file.blob.stream().getReader();
  let bytesRead = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = maxBytes - bytesRead;
      const bytes = value.length > room ? value.subarray(0, room) : value;
      bytesRead += bytes.length;
      let text: string;
      try {
        text = decoder.decode(bytes, { stream: true });
      } catch {
        throw new DatasetFileError(
          `${file.name}: not UTF-8 text (an invalid byte on line ${lineAt()}); save it as UTF-8 and drop it again`,
        );
      }
      options.onProgress?.({ bytesRead, totalBytes: file.blob.size });
      yield text;
      if (bytesRead >= maxBytes) {
        options.onTruncated?.(
          `${file.name}: only the first ${megabytes(maxBytes)} of ${megabytes(file.blob.size)} were read; ` +
            `split the file to use the rest`,
        );
        return;
      }
    }
    try {
      // Flushes a sequence cut off at the end, which a truncated read may leave.
      yield decoder.decode();
    } catch {
      if (bytesRead < file.blob.size) return;
      throw new DatasetFileError(`${file.name}: not UTF-8 text (the file ends inside a character on line ${lineAt()})`);
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * A JSON.parse error for a line of the file: its column in that line, not a position or a "line 1" inside the record
 * (browsers' V8 adds "(line 1 column N)", Node's says "at position P").
 */
function jsonMessage(error: Error): string {
  return error.message
    .replace(/ \(line \d+ column \d+\)/, '')
    .replace(/at position (\d+)/, (_, position: string) => `at column ${Number(position) + 1}`);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

async function* readJsonl(file: DatasetFile, options: ReadOptions): AsyncGenerator<RawItem> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  let line = 0;
  let pending = '';
  const parseLine = (text: string, lineNumber: number): RawItem | null => {
    if (text.trim() === '') return null;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return { issue: { line: lineNumber, reason: `malformed JSON: ${jsonMessage(error as Error)}` } };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return {
        issue: { line: lineNumber, reason: `wrong type: expected a JSON object, found ${describeType(value)}` },
      };
    }
    return { record: { line: lineNumber, value: value as Record<string, unknown> } };
  };
  let truncated = false;
  const watched: ReadOptions = {
    ...options,
    onTruncated: (notice) => {
      truncated = true;
      options.onTruncated?.(notice);
    },
  };
  for await (const piece of textPieces(file, limits.maxBytes, watched, () => line + 1)) {
    pending += piece;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      line++;
      const item = parseLine(pending.slice(0, newline).replace(/\r$/, ''), line);
      if (item) yield item;
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  }
  // A last line without a newline is a record, unless the byte limit cut it in half.
  if (!truncated) {
    const item = parseLine(pending.replace(/\r$/, ''), line + 1);
    if (item) yield item;
  }
}

async function wholeText(file: DatasetFile, options: ReadOptions, what: string): Promise<string> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  if (file.blob.size > limits.maxBytes) {
    throw new DatasetFileError(
      `${file.name}: ${megabytes(file.blob.size)} is too large to read as ${what} (the limit is ` +
        `${megabytes(limits.maxBytes)}); save it as JSONL, which Hone reads as a stream, or split it`,
    );
  }
  let text = '';
  for await (const piece of textPieces(file, limits.maxBytes, options, () => text.split('\n').length)) text += piece;
  return text;
}

/** The list a JSON file holds: the file itself, or the one field of its top-level object that is a list. */
function jsonList(file: DatasetFile, value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === 'object' && value !== null) {
    const lists = Object.entries(value).filter(([, v]) => Array.isArray(v) && v.length > 0);
    const preferred = lists.find(([k]) => ['data', 'train', 'rows', 'examples', 'records'].includes(k));
    const chosen = preferred ?? (lists.length === 1 ? lists[0] : undefined);
    if (chosen) return chosen[1] as unknown[];
    if (lists.length > 1) {
      throw new DatasetFileError(
        `${file.name}: the object holds several lists (${lists.map(([k]) => k).join(', ')}); keep one, or name it "data"`,
      );
    }
  }
  throw new DatasetFileError(
    `${file.name}: not a dataset: expected a JSON array of records or an object holding one, found ${describeType(value)}`,
  );
}

async function* readJson(file: DatasetFile, options: ReadOptions): AsyncGenerator<RawItem> {
  const text = await wholeText(file, options, 'JSON');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DatasetFileError(`${file.name}: malformed JSON: ${(error as Error).message}`);
  }
  const list = jsonList(file, value);
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      yield { record: { line: i + 1, value: item as Record<string, unknown> } };
    } else {
      yield { issue: { line: i + 1, reason: `wrong type: expected a JSON object, found ${describeType(item)}` } };
    }
  }
}

async function* readDelimited(file: DatasetFile, options: ReadOptions, delimiter: ',' | '\t'): AsyncGenerator<RawItem> {
  const text = await wholeText(file, options, delimiter === ',' ? 'CSV' : 'TSV');
  // Lines are counted up to where each row starts, so a row's quoted newlines do not shift the numbers after it.
  let newlines = 0;
  let scanned = 0;
  const lineOf = (offset: number) => {
    for (; scanned < offset; scanned++) if (text.charCodeAt(scanned) === 10) newlines++;
    return newlines + 1;
  };
  let header: string[] | null = null;
  let rowEnd = 0;
  const items: RawItem[] = [];
  Papa.parse<string[]>(text, {
    delimiter,
    skipEmptyLines: 'greedy',
    step: (row) => {
      let start = rowEnd;
      while (start < text.length && /\s/.test(text[start]) && text[start] !== delimiter) start++;
      rowEnd = row.meta.cursor;
      const line = lineOf(start);
      if (header === null) {
        header = row.data.map((name) => name.trim());
        return;
      }
      if (row.errors.length > 0) {
        items.push({ issue: { line, reason: `malformed row: ${row.errors[0].message}` } });
      } else if (row.data.length !== header.length) {
        items.push({
          issue: { line, reason: `malformed row: ${row.data.length} fields where the header names ${header.length}` },
        });
      } else {
        const names = header;
        items.push({ record: { line, value: Object.fromEntries(names.map((name, i) => [name, row.data[i]])) } });
      }
    },
  });
  const names: string[] = header ?? [];
  if (names.length === 0 || names.every((name) => name === '')) {
    throw new DatasetFileError(`${file.name}: no header row; the first row must name the columns`);
  }
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new DatasetFileError(`${file.name}: the column "${duplicate}" appears twice`);
  yield* items;
}

async function* readText(file: DatasetFile, options: ReadOptions): AsyncGenerator<RawItem> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  let text = '';
  for await (const piece of textPieces(file, limits.maxBytes, options, () => text.split('\n').length)) text += piece;
  yield { record: { line: 1, value: text } };
}

/** Reads Parquet through hyparquet, a slice of the Blob at a time, a batch of rows at a time. */
async function* readParquet(file: DatasetFile, options: ReadOptions): AsyncGenerator<RawItem> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const magic = new TextDecoder().decode(await file.blob.slice(0, 4).arrayBuffer());
  if (magic !== 'PAR1') throw new DatasetFileError(`${file.name}: not a Parquet file (it does not start with PAR1)`);
  const buffer = {
    byteLength: file.blob.size,
    slice: (start: number, end?: number) => file.blob.slice(start, end).arrayBuffer(),
  };
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (error) {
    throw new DatasetFileError(`${file.name}: the Parquet metadata cannot be read: ${(error as Error).message}`);
  }
  const rows = Number(metadata.num_rows);
  const batch = 1000;
  let keptBytes = 0;
  for (let start = 0; start < rows; start += batch) {
    let objects: Record<string, unknown>[];
    try {
      objects = await parquetReadObjects({
        file: buffer,
        metadata,
        rowStart: start,
        rowEnd: Math.min(rows, start + batch),
        compressors,
        rowFormat: 'object',
      });
    } catch (error) {
      throw new DatasetFileError(
        `${file.name}: rows ${start + 1}-${start + batch} cannot be read: ${(error as Error).message}`,
      );
    }
    for (let i = 0; i < objects.length; i++) {
      const value = toPlainJson(objects[i]) as Record<string, unknown>;
      keptBytes += JSON.stringify(value).length;
      yield { record: { line: start + i + 1, value } };
      if (keptBytes >= limits.maxBytes) {
        options.onTruncated?.(
          `${file.name}: only the first ${start + i + 1} of ${rows} rows were read (${megabytes(limits.maxBytes)} ` +
            'of records); split the file to use the rest',
        );
        return;
      }
    }
    options.onProgress?.({
      bytesRead: Math.round((file.blob.size * Math.min(rows, start + batch)) / rows),
      totalBytes: file.blob.size,
    });
  }
}

/** Parquet values as JSON would hold them: BigInt to number, typed arrays and dates to plain values. */
function toPlainJson(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toPlainJson);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlainJson(v)]));
  }
  return value;
}

/** Every record of one file, or the reasons its records cannot be read. */
export function readRecords(file: DatasetFile, options: ReadOptions = {}): AsyncGenerator<RawItem> {
  if (file.blob.size === 0) throw new DatasetFileError(`${file.name}: the file is empty`);
  switch (fileKind(file.name)) {
    case 'jsonl':
      return readJsonl(file, options);
    case 'json':
      return readJson(file, options);
    case 'csv':
      return readDelimited(file, options, ',');
    case 'tsv':
      return readDelimited(file, options, '\t');
    case 'parquet':
      return readParquet(file, options);
    case 'text':
      return readText(file, options);
  }
}
