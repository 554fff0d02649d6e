/**
 * One or more dataset files into examples of one format: read as streams, the format detected from the first
 * records (or given), each record checked, the good ones kept and every bad one reported with its file and line.
 */
import {
  DATASET_FORMATS,
  type DatasetFormat,
  defaultMapping,
  detectFormat,
  type Example,
  type FieldMapping,
  FORMAT_SPECS,
  normalizeRecord,
} from './formats';
import { type DatasetFile, DatasetFileError, type RawRecord, type ReadLimits, readRecords } from './read-records';

export interface SourcedExample {
  example: Example;
  file: string;
  line: number;
}

export interface DatasetIssue {
  file: string;
  /** 1-based line (JSONL, CSV, text) or record index (JSON, Parquet); 0 when the whole file is at fault. */
  line: number;
  reason: string;
}

export interface FileSummary {
  name: string;
  bytes: number;
  records: number;
  skipped: number;
  /** Why the file was not read at all, when it was not. */
  error?: string;
  /** What was left out of a file read only in part. */
  notice?: string;
}

export interface Dataset {
  format: DatasetFormat;
  /** Whether the format was detected (true) or given by the person (false). */
  detected: boolean;
  mapping: FieldMapping;
  /** The columns (fields) the records have, for mapping them by hand. */
  columns: string[];
  examples: SourcedExample[];
  issues: DatasetIssue[];
  files: FileSummary[];
}

export interface LoadProgress {
  file: string;
  bytesRead: number;
  totalBytes: number;
  records: number;
}

export interface LoadOptions {
  format?: DatasetFormat;
  /** Overrides the detected column for any field named. */
  mapping?: FieldMapping;
  limits?: ReadLimits;
  onProgress?: (progress: LoadProgress) => void;
}

/** Nothing in the files can be used: no file could be read, or no format fits their records. */
export class DatasetError extends Error {
  constructor(
    message: string,
    /** The columns seen, so a format and mapping can be picked by hand. */
    readonly columns: string[] = [],
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

/** How many records the format is detected from. */
const SAMPLE_SIZE = 200;

function columnsOf(records: RawRecord[]): string[] {
  const columns = new Set<string>();
  for (const r of records) if (typeof r.value !== 'string') for (const key of Object.keys(r.value)) columns.add(key);
  return [...columns];
}

export async function loadDataset(files: DatasetFile[], options: LoadOptions = {}): Promise<Dataset> {
  if (files.length === 0) throw new DatasetError('no file was given');
  if (options.format && !DATASET_FORMATS.includes(options.format)) {
    throw new DatasetError(`unknown format "${options.format}"; the formats are ${DATASET_FORMATS.join(', ')}`);
  }
  const examples: SourcedExample[] = [];
  const issues: DatasetIssue[] = [];
  const summaries: FileSummary[] = [];
  const columns = new Set<string>();
  let format: DatasetFormat | null = options.format ?? null;
  let mapping: FieldMapping | null = null;

  // The format and mapping are settled on the first records seen and then hold for every file.
  const settle = (sample: RawRecord[], fileName: string) => {
    for (const column of columnsOf(sample)) columns.add(column);
    const values = sample.map((r) => r.value);
    format ??= detectFormat(values);
    if (format === null) {
      const seen = [...columns];
      throw new DatasetError(
        `${fileName}: not a dataset Hone recognises` +
          (seen.length > 0 ? `: its records have the fields ${seen.join(', ')}` : '') +
          '; pick its format and say which field is which',
        seen,
      );
    }
    mapping = { ...defaultMapping(format, values), ...options.mapping };
    for (const [name, column] of Object.entries(mapping)) if (column === '') delete mapping[name];
    const known = FORMAT_SPECS[format].fields.map((f) => f.name);
    const unknown = Object.keys(mapping).filter((name) => !known.includes(name));
    if (unknown.length > 0) {
      throw new DatasetError(`the ${format} format has no field ${unknown.join(', ')}; it has ${known.join(', ')}`, [
        ...columns,
      ]);
    }
  };

  for (const file of files) {
    const summary: FileSummary = { name: file.name, bytes: file.blob.size, records: 0, skipped: 0 };
    summaries.push(summary);
    let pending: RawRecord[] = [];
    const use = (record: RawRecord) => {
      const result = normalizeRecord(record.value, format as DatasetFormat, mapping as FieldMapping);
      if ('example' in result) {
        examples.push({ example: result.example, file: file.name, line: record.line });
        summary.records++;
      } else {
        issues.push({ file: file.name, line: record.line, reason: result.reason });
        summary.skipped++;
      }
    };
    try {
      const items = readRecords(file, {
        limits: options.limits,
        onProgress: (p) => options.onProgress?.({ file: file.name, ...p, records: examples.length }),
        onTruncated: (notice) => {
          summary.notice = notice;
        },
      });
      for await (const item of items) {
        if ('issue' in item) {
          issues.push({ file: file.name, ...item.issue });
          summary.skipped++;
        } else if (mapping === null) {
          pending.push(item.record);
          if (pending.length >= SAMPLE_SIZE) {
            settle(pending, file.name);
            pending.forEach(use);
            pending = [];
          }
        } else {
          for (const column of columnsOf([item.record])) columns.add(column);
          use(item.record);
        }
      }
      if (pending.length > 0) {
        if (mapping === null) settle(pending, file.name);
        pending.forEach(use);
      }
    } catch (error) {
      if (!(error instanceof DatasetFileError)) throw error;
      summary.error = error.message;
      issues.push({ file: file.name, line: 0, reason: error.message });
    }
  }
  if (format === null || mapping === null) {
    throw new DatasetError(summaries.map((s) => s.error ?? noRecords(s.name, issues)).join('\n'), [...columns]);
  }
  // Records are checked once the format is settled, so read errors were noted first; put them back in line order.
  const fileOrder = new Map(files.map((f, i) => [f.name, i]));
  issues.sort((a, b) => (fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0) || a.line - b.line);
  return {
    format,
    detected: options.format === undefined,
    mapping,
    columns: [...columns],
    examples,
    issues,
    files: summaries,
  };
}

/** The issues as a CSV file a person can open next to the dataset. */
export function issuesCsv(issues: DatasetIssue[]): string {
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  const rows = issues.map((i) => `${quote(i.file)},${i.line},${quote(i.reason)}`);
  return `${['file,line,reason', ...rows].join('\n')}\n`;
}

/** Why a file gave no records: its first skipped line and how many more, with a hint when it looks like prose. */
function noRecords(name: string, issues: DatasetIssue[]): string {
  const own = issues.filter((i) => i.file === name);
  if (own.length === 0) return `${name}: no records (the file is empty or holds only blank lines)`;
  const [first] = own;
  const more = own.length > 1 ? `, and ${own.length - 1} more line${own.length > 2 ? 's' : ''} skipped` : '';
  const prose = own.every((i) => i.reason.startsWith('malformed JSON'))
    ? ': none of its lines is JSON. If it is plain text, name it .txt to train on it as raw text'
    : '';
  return `${name}: no usable records; line ${first.line}: ${first.reason}${more}${prose}`;
}
