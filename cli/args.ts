import type { FieldMapping } from '../core/dataset/formats';

/** A numeric flag's value, undefined when absent; anything that is not a finite number is refused by the flag's name. */
export function numberFlag(values: Record<string, unknown>, flag: string): number | undefined {
  const text = values[flag];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(n)) {
    throw new Error(`--${flag} takes a number, not '${String(text)}'`);
  }
  return n;
}

/** `--map FIELD=COLUMN` flags as a field mapping. */
export function parseMapping(pairs: string[]): FieldMapping {
  const mapping: FieldMapping = {};
  for (const pair of pairs) {
    const [field, column] = pair.split('=');
    if (!field || column === undefined) throw new Error(`--map takes FIELD=COLUMN, not '${pair}'`);
    mapping[field] = column;
  }
  return mapping;
}
