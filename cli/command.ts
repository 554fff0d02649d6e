import { parseArgs } from 'node:util';
import type { FieldMapping } from '../core/dataset/formats';

/** A flag as `hone COMMAND --help` lists it. */
export interface Flag {
  /** The value's name (N, X, FILE); absent for a switch. */
  value?: string;
  help: string;
  /** What applies when the flag is left out, as help shows it. */
  default?: string | number | boolean;
  multiple?: boolean;
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** `hone train --model M ...`: the one-line synopsis. */
  usage: string;
  /** What the command does, a sentence or two. */
  summary: string;
  flags: Record<string, Flag>;
  /** It takes positional arguments (files). */
  positionals?: boolean;
  run(parsed: { values: FlagValues; positionals: string[] }): Promise<number>;
}

/** The arguments parsed by the command's flags; a flag left out is undefined (a switch false, a list empty). */
export function parseCommand(command: Command, args: string[]): { values: FlagValues; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(command.flags).map(([name, flag]) => [
      name,
      flag.value
        ? { type: 'string' as const, multiple: flag.multiple ?? false }
        : { type: 'boolean' as const, default: false },
    ]),
  );
  const parsed = parseArgs({ args, options, strict: true, allowPositionals: command.positionals ?? false });
  const values = parsed.values as FlagValues;
  for (const [name, flag] of Object.entries(command.flags)) if (flag.multiple) values[name] ??= [];
  return { values, positionals: parsed.positionals };
}

/** `hone COMMAND --help`: the synopsis, what it does, and every flag with its default. */
export function commandHelp(command: Command): string {
  const rows = Object.entries(command.flags).map(([name, flag]) => {
    const left = `  --${name}${flag.value ? ` ${flag.value}` : ''}`;
    const shown = flag.default === undefined || flag.default === false ? '' : ` (default: ${flag.default})`;
    return [left, `${flag.help}${shown}`] as const;
  });
  const width = Math.min(30, Math.max(0, ...rows.map(([left]) => left.length)) + 2);
  const lines = rows.map(([left, right]) => {
    const text = wrap(right, width).trimStart();
    return left.length + 2 > width ? `${left}\n${' '.repeat(width)}${text}` : `${left.padEnd(width)}${text}`;
  });
  return `usage: ${command.usage}\n\n${wrap(command.summary, 0)}\n\n${lines.join('\n')}\n`;
}

/** Text folded at 110 columns, each line indented. */
export function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + word.length + 1 > 110) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`).join('\n');
}

/** A numeric flag's value, undefined when absent; anything that is not a finite number is refused by the flag's name. */
export function numberFlag(values: FlagValues, flag: string): number | undefined {
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
