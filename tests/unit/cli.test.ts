import { describe, expect, it } from 'vitest';
import { hone } from '../helpers/hone-cli';

describe('hone CLI', () => {
  it('gpu-info prints the adapter as JSON with a verified kernel run', async () => {
    const { code, stdout } = await hone('gpu-info');
    expect(code).toBe(0);
    const info = JSON.parse(stdout);
    expect(info.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(typeof info.adapter.isFallbackAdapter).toBe('boolean');
    expect(info.selfTest.passed).toBe(true);
    expect(info.selfTest.maxAbsError).toBeLessThanOrEqual(info.selfTest.tolerance);
  });

  it('rejects an unknown command with usage and exit code 2', async () => {
    const { code, stderr } = await hone('frobnicate');
    expect(code).toBe(2);
    expect(stderr).toContain("unknown command 'frobnicate'");
    expect(stderr).toContain('gpu-info');
  });

  it('answers --help after a command with the usage, exit code 0', async () => {
    const { code, stdout } = await hone('generate', '--model', 'x', '--help');
    expect(code).toBe(0);
    expect(stdout).toContain('hone generate --model');
    expect(stdout).toContain('hone train --model');
  });

  it('rejects stray arguments to gpu-info by name', async () => {
    const { code, stderr } = await hone('gpu-info', '--bogus');
    expect(code).toBe(1);
    expect(stderr).toContain('gpu-info takes no arguments');
  });
});
