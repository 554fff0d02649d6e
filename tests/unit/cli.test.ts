import { describe, expect, it } from 'vitest';
import { DEFAULT_DATA, defaultLearningRate, defaultSettings } from '../../core/training/settings';
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

  it("answers each command's --help with its own flags and the studio's defaults, exit code 0", async () => {
    const train = await hone('train', '--model', 'x', '--help');
    expect(train.code).toBe(0);
    expect(train.stdout).toContain('usage: hone train --model M');
    expect(train.stdout).not.toContain('hone generate');
    const sft = defaultSettings('sft', 1e6);
    expect(train.stdout).toMatch(
      new RegExp(`--seq-len N +the longest sequence in tokens \\(default: ${sft.seqLen}\\)`),
    );
    expect(train.stdout).toMatch(new RegExp(`--validation X .*\\(default: ${DEFAULT_DATA.validation}\\)`));
    expect(train.stdout).toMatch(new RegExp(`--lora-r N +the LoRA rank \\(default: ${sft.loraR}\\)`));
    expect(train.stdout).toContain(`${defaultLearningRate('sft', 1e6, false)} under 20M parameters`);
    const inspect = await hone('inspect', '--help');
    expect(inspect.stdout).toMatch(new RegExp(`--max-length N .*\\(default: ${DEFAULT_DATA.maxLength}\\)`));
    for (const command of ['generate', 'merge', 'grads', 'cache', 'gpu-info']) {
      const { code, stdout } = await hone(command, '--help');
      expect(code).toBe(0);
      expect(stdout).toContain(`usage: hone ${command}`);
    }
    expect((await hone('generate', '-h')).stdout).toMatch(/--temperature T .*\(default: 0\.7\)/);
  });

  it('rejects a flag the command does not take, by name', async () => {
    const { code, stderr } = await hone('gpu-info', '--bogus');
    expect(code).toBe(1);
    expect(stderr).toContain("Unknown option '--bogus'");
  });
});
