import { type LengthStats, packBlocks } from '../../core/dataset/batches';
import { DATASET_FORMATS, type DatasetFormat, FORMAT_SPECS } from '../../core/dataset/formats';
import { DatasetError, loadDataset } from '../../core/dataset/load-dataset';
import { sequenceStats, tokenizeExamples } from '../../core/dataset/tokenize-dataset';
import { loadTokenizer } from '../../core/tokenizer';
import { DEFAULT_DATA } from '../../core/training/settings';
import { type Command, type FlagValues, parseMapping } from '../command';
import { datasetFiles } from '../folder';
import { modelSource } from '../model-source';

function histogramLines(stats: LengthStats): string[] {
  const widest = Math.max(...stats.histogram.map((b) => b.count));
  return stats.histogram.map(
    (b) =>
      `  ${`${b.from}-${b.to}`.padStart(11)} ${'#'.repeat(Math.round((40 * b.count) / Math.max(1, widest))).padEnd(40)} ${b.count}`,
  );
}

/**
 * `hone inspect`: what Hone makes of dataset files: the detected format and field mapping, the usable and skipped
 * records with every error's file and line, and with --model the token-length statistics under its chat template.
 */
export const inspect: Command = {
  usage: 'hone inspect FILE... [--model M] [--format F] [--map FIELD=COLUMN]... [--max-length N] [--json] [--strict]',
  summary:
    'What Hone makes of dataset files: the format, every bad record with its line, and with --model the token ' +
    "lengths under the model's chat template. Exits 1 when no record is usable (with --strict, when any is skipped).",
  positionals: true,
  flags: {
    model: { value: 'M', help: "count tokens with this model's tokenizer and chat template" },
    format: { value: 'F', help: `the dataset's format, when not the detected one: ${DATASET_FORMATS.join(', ')}` },
    map: { value: 'FIELD=COLUMN', help: "a format's field read from another column", multiple: true },
    'max-length': { value: 'N', help: 'the longest sequence in tokens', default: DEFAULT_DATA.maxLength },
    'prompt-loss': { help: 'count the prompt tokens as trained too' },
    json: { help: 'print the report as JSON' },
    strict: { help: 'exit 1 when any record is skipped, not only when none is usable (for scripts)' },
  },
  run: ({ values, positionals }) => inspectFiles(values, positionals),
};

async function inspectFiles(values: FlagValues, positionals: string[]): Promise<number> {
  if (positionals.length === 0) throw new Error(`usage: ${inspect.usage}`);
  const format = values.format as DatasetFormat | undefined;
  if (format !== undefined && !DATASET_FORMATS.includes(format)) {
    throw new Error(`--format must be one of ${DATASET_FORMATS.join(', ')}, not '${format}'`);
  }
  const maxLength = values['max-length'] === undefined ? DEFAULT_DATA.maxLength : Number(values['max-length']);
  if (!Number.isInteger(maxLength) || maxLength < 2)
    throw new Error('--max-length must be a whole number of at least 2');

  const files = await datasetFiles(positionals);
  let dataset: Awaited<ReturnType<typeof loadDataset>>;
  try {
    dataset = await loadDataset(files, { format, mapping: parseMapping(values.map as string[]) });
  } catch (error) {
    if (error instanceof DatasetError) {
      process.stderr.write(`hone inspect: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const errors = [...dataset.issues];
  let records = dataset.examples.length;
  let tokens: LengthStats | undefined;
  // Raw text is packed into blocks of the max length rather than cut.
  let packedBlocks: number | undefined;
  if (values.model) {
    // Rendering can refuse records too (a template that raises), so they count as skipped.
    const source = modelSource(String(values.model));
    const tokenizer = await loadTokenizer(source.read, source.label);
    const result = tokenizeExamples(dataset.examples, tokenizer, { trainOnPrompt: Boolean(values['prompt-loss']) });
    errors.push(...result.issues);
    records = result.tokenized.length;
    tokens = sequenceStats(result.tokenized, maxLength);
    if (dataset.format === 'text') {
      packedBlocks = packBlocks(
        result.tokenized.map((t) => t.sequences[0].ids),
        maxLength,
      ).length;
    }
  }
  const report = {
    format: dataset.format,
    detected: dataset.detected,
    mapping: dataset.mapping,
    columns: dataset.columns,
    records,
    skipped: errors.length,
    errors: errors.map(({ file, line, reason }) => ({ file, line, reason })),
    files: dataset.files,
    ...(tokens ? { maxLength, tokens } : {}),
    ...(packedBlocks === undefined ? {} : { packedBlocks }),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const out: string[] = [];
    const mapping = Object.entries(dataset.mapping).map(([field, column]) =>
      field === column ? field : `${field}=${column}`,
    );
    out.push(
      `format: ${dataset.format} — ${FORMAT_SPECS[dataset.format].label}${dataset.detected ? ' (detected)' : ''}`,
      `fields: ${mapping.length > 0 ? mapping.join(', ') : 'none (each file is one document)'}`,
      `${records} usable, ${errors.length} skipped`,
    );
    for (const file of dataset.files) if (file.notice) out.push(`note: ${file.notice}`);
    for (const e of errors) out.push(`  ${e.file}${e.line > 0 ? `:${e.line}` : ''}: ${e.reason}`);
    if (tokens) {
      out.push(
        `tokens per sequence (${values.model}): min ${tokens.min}, median ${tokens.median}, mean ${tokens.mean.toFixed(1)}, ` +
          `p95 ${tokens.p95}, max ${tokens.max}; ` +
          (packedBlocks === undefined
            ? `${tokens.truncated} of ${tokens.count} longer than ${maxLength}`
            : `packed into ${packedBlocks} blocks of ${maxLength}`),
        ...histogramLines(tokens),
      );
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return records > 0 && !(values.strict && errors.length > 0) ? 0 : 1;
}
