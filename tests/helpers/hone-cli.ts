import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HONE = new URL('../../bin/hone.mjs', import.meta.url).pathname;

/** Runs the `hone` command as a user would; never throws, returns the exit code and output. */
export async function hone(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return honeWithEnv({}, ...args);
}

/** `hone` with extra environment variables (a Hub URL, a cache folder). */
export async function honeWithEnv(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [HONE, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `hone`, sent Ctrl-C (SIGINT) once its stderr matches `when`; the exit code and output. */
export function honeInterrupted(
  when: RegExp,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HONE, ...args]);
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (!sent && when.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The records of metrics.jsonl in a `hone train` run's folder. */
export async function runMetrics(out: string) {
  const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  return lines.map((line) => JSON.parse(line));
}

/** The training losses of a `hone train` run's folder, step by step. */
export async function trainLosses(out: string): Promise<number[]> {
  return (await runMetrics(out)).filter((r) => r.type === 'train').map((r): number => r.loss);
}
