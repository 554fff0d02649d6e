import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, uploadBuffer } from '../gpu/buffers';
import { DecodeAttentionKernels } from './decode-attention';
import { decodeAttentionCpu } from './decode-attention.cpu';

const gpu = setupTestGpu();

describe('decode attention over a key-value cache', () => {
  it('appends the new key and value at the position, leaving other rows alone', async () => {
    const { device } = gpu();
    const k = new DecodeAttentionKernels(device);
    const width = 10;
    const kCache = uploadBuffer(device, randomUniform(7 * width, 1));
    const vCache = uploadBuffer(device, randomUniform(7 * width, 2));
    const before = randomUniform(7 * width, 1);
    const newK = randomUniform(width, 3);
    const op = k.appendOp(
      uploadBuffer(device, Uint32Array.of(4)),
      uploadBuffer(device, newK),
      uploadBuffer(device, randomUniform(width, 4)),
      kCache,
      vCache,
      width,
    );
    const after = await runAndRead(device, [op], kCache);
    const expected = Float32Array.from(before);
    expected.set(newK, 4 * width);
    expect(after).toEqual(expected);
  });

  for (const [heads, kvHeads, headDim, position] of [
    [6, 2, 5, 0],
    [6, 2, 5, 66],
    [4, 4, 7, 13],
    [3, 1, 9, 130],
  ]) {
    it(`matches its CPU twin: ${heads} heads over ${kvHeads}, head dim ${headDim}, position ${position}`, async () => {
      const { device } = gpu();
      const k = new DecodeAttentionKernels(device);
      const maxLen = position + 3;
      const width = kvHeads * headDim;
      const q = randomUniform(heads * headDim, 5, -2, 2);
      const kc = randomUniform(maxLen * width, 6, -2, 2);
      const vc = randomUniform(maxLen * width, 7);
      // Rows past the position hold garbage that must never be read.
      kc.fill(1e6, (position + 1) * width);
      vc.fill(Number.NaN, (position + 1) * width);
      const out = createStorageBuffer(device, heads * headDim * 4);
      const op = k.attendOp(
        uploadBuffer(device, Uint32Array.of(position)),
        uploadBuffer(device, q),
        uploadBuffer(device, kc),
        uploadBuffer(device, vc),
        createStorageBuffer(device, heads * maxLen * 4),
        out,
        { heads, kvHeads, headDim, maxLen },
      );
      const got = await runAndRead(device, [op], out);
      const expected = decodeAttentionCpu(q, kc, vc, position, { heads, kvHeads, headDim });
      expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
    });
  }
});
