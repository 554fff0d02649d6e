import { execFile } from 'node:child_process';
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
