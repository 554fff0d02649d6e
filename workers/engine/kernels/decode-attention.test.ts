import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { DecodeAttentionKernels } from './decode-attention';
import { decodeAttentionCpu } from './decode-attention.cpu';
import { ropeCpu } from './rope.cpu';

const gpu = setupTestGpu();

describe('decode attention over a key-value cache', () => {
  it('rotates q, and k into the cache row of the position, copies v there, and leaves other rows alone', async () => {
    const { device } = gpu();
    const k = new DecodeAttentionKernels(device);
    const shape = { heads: 6, kvHeads: 2, headDim: 6 };
    const width = shape.kvHeads * shape.headDim;
    const [q, newK, newV] = [6 * 6, width, width].map((n, i) => randomUniform(n, 10 + i));
    const cos = randomUniform(3, 13);
    const sin = randomUniform(3, 14);
    const [kBefore, vBefore] = [randomUniform(7 * width, 1), randomUniform(7 * width, 2)];
    const [kCache, vCache] = [uploadBuffer(device, kBefore), uploadBuffer(device, vBefore)];
    const qRot = createStorageBuffer(device, q.length * 4);
    const op = k.rotateAppendOp(
      uploadBuffer(device, Uint32Array.of(4)),
      {
        q: uploadBuffer(device, q),
        k: uploadBuffer(device, newK),
        v: uploadBuffer(device, newV),
        cos: uploadBuffer(device, cos),
        sin: uploadBuffer(device, sin),
      },
      { qRot, kCache, vCache },
      shape,
    );
    submitOps(device, [op]);
    // The rope kernel's twin at one position (seq 1) is the rotation expected.
    const rope = (x: Float32Array, heads: number) =>
      ropeCpu('forward', x, cos, sin, { batch: 1, seq: 1, heads, headDim: 6 });
    expect(maxRelativeError(await readFloat32(device, qRot), rope(q, 6))).toBeLessThan(1e-6);
    const kExpected = Float64Array.from(kBefore);
    kExpected.set(rope(newK, 2), 4 * width);
    expect(maxRelativeError(await readFloat32(device, kCache), kExpected)).toBeLessThan(1e-6);
    const vExpected = Float32Array.from(vBefore);
    vExpected.set(newV, 4 * width);
    expect(await readFloat32(device, vCache)).toEqual(vExpected);
  });

  for (const [heads, kvHeads, headDim, position, layout] of [
    [6, 2, 5, 0, 'cooperative'],
    [6, 2, 5, 66, 'cooperative'],
    [4, 4, 7, 13, 'cooperative'],
    [3, 1, 9, 130, 'cooperative'],
    // An invocation per head: scalar rows (head dim 5), vec4 rows (8), past a workgroup of heads (70).
    [6, 2, 5, 66, 'row'],
    [4, 4, 8, 13, 'row'],
    [70, 10, 8, 3, 'row'],
    [3, 1, 8, 0, 'row'],
  ] as const) {
    it(`matches its CPU twin: ${layout}, ${heads} heads over ${kvHeads}, head dim ${headDim}, position ${position}`, async () => {
      const { device } = gpu();
      const k = new DecodeAttentionKernels(device, layout);
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
