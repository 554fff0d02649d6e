import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DATA } from '../../core/training/settings';
import { hone } from '../helpers/hone-cli';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hone-inspect-'));
});

async function write(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

describe('hone inspect', () => {
  it('prints the format, counts, every error with its line, and token statistics as JSON', async () => {
    const path = await write(
      'chat.jsonl',
      [
        JSON.stringify({
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Hello.' },
          ],
        }),
        '{broken',
        JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
        JSON.stringify({
          messages: [
            { role: 'user', content: 'Why?' },
            { role: 'assistant', content: 'Because.' },
          ],
        }),
      ].join('\n'),
    );
    const { code, stdout } = await hone('inspect', path, '--model', 'hone-tiny', '--max-length', '12', '--json');
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({ format: 'messages', records: 2, skipped: 2, maxLength: 12 });
    expect(report.errors.map((e: { line: number }) => e.line)).toEqual([2, 3]);
    expect(report.errors[0].reason).toMatch(/^malformed JSON/);
    expect(report.errors[1].reason).toBe('"messages" has no assistant message to learn from');
    expect(report.tokens.count).toBe(2);
    expect(report.tokens.min).toBeGreaterThan(12);
    expect(report.tokens.truncated).toBe(2);
    // Scripts can fail on any skipped record.
    const strict = await hone('inspect', path, '--strict');
    expect(strict.code).toBe(1);
    expect(strict.stdout).toContain('2 usable, 2 skipped');
  });

  it('takes a format and a mapping, and reads CSV rows with their line numbers', async () => {
    const path = await write('qa.csv', 'q,a\nWhat?,That.\nEmpty,\n');
    const detected = await hone('inspect', path, '--json');
    expect(detected.code).toBe(1);
    expect(detected.stderr).toContain('not a dataset Hone recognises: its records have the fields q, a');
    const { code, stdout } = await hone(
      'inspect',
      path,
      '--format',
      'prompt_completion',
      '--map',
      'prompt=q',
      '--map',
      'completion=a',
      '--json',
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({ format: 'prompt_completion', records: 1, skipped: 1 });
    expect(report.errors).toEqual([{ file: 'qa.csv', line: 3, reason: 'empty content in "a"' }]);
  });

  it('exits non-zero with a message for a file that is not a dataset', async () => {
    const binary = await write('image.jsonl', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
    const result = await hone('inspect', binary);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('image.jsonl: this is a binary file, not text');
    const missing = await hone('inspect', join(dir, 'nope.jsonl'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.jsonl: no such file');
    const format = await hone('inspect', binary, '--format', 'yaml');
    expect(format.stderr).toContain('--format must be one of text, alpaca');
  });

  it('prints a readable report by default', async () => {
    const path = await write('docs.txt', 'Call me Ishmael. Some years ago, never mind how long precisely.');
    const { code, stdout } = await hone('inspect', path, '--model', 'hone-tiny');
    expect(code).toBe(0);
    expect(stdout).toContain('format: text — Raw text (detected)');
    expect(stdout).toContain('1 usable, 0 skipped');
    expect(stdout).toMatch(/tokens per sequence \(hone-tiny\): min \d+/);
    expect(stdout).toContain(`packed into 1 blocks of ${DEFAULT_DATA.maxLength}`);
  });
});
