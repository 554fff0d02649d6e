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
  for (const rows of [1, 3]) {
    it(`rotates q, and k into the cache row of the position, copies v there, and leaves other rows alone (${rows} rows)`, async () => {
      const { device } = gpu();
      const k = new DecodeAttentionKernels(device);
      const shape = { heads: 6, kvHeads: 2, headDim: 6, maxLen: 7, rows };
      const width = shape.kvHeads * shape.headDim;
      const [q, newK, newV] = [6 * 6, width, width].map((n, i) => randomUniform(rows * n, 10 + i));
      const cos = randomUniform(3, 13);
      const sin = randomUniform(3, 14);
      const [kBefore, vBefore] = [randomUniform(rows * 7 * width, 1), randomUniform(rows * 7 * width, 2)];
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
      // The rope kernel's twin at one position (seq 1, a batch of rows) is the rotation expected.
      const rope = (x: Float32Array, heads: number) =>
        ropeCpu('forward', x, cos, sin, { batch: rows, seq: 1, heads, headDim: 6 });
      expect(maxRelativeError(await readFloat32(device, qRot), rope(q, 6))).toBeLessThan(1e-6);
      const kExpected = Float64Array.from(kBefore);
      const vExpected = Float32Array.from(vBefore);
      const kRotated = rope(newK, 2);
      for (let r = 0; r < rows; r++) {
        kExpected.set(kRotated.subarray(r * width, (r + 1) * width), (r * 7 + 4) * width);
        vExpected.set(newV.subarray(r * width, (r + 1) * width), (r * 7 + 4) * width);
      }
      expect(maxRelativeError(await readFloat32(device, kCache), kExpected)).toBeLessThan(1e-6);
      expect(await readFloat32(device, vCache)).toEqual(vExpected);
    });
  }

  for (const [heads, kvHeads, headDim, position, rows, layout] of [
    [6, 2, 5, 0, 1, 'cooperative'],
    [6, 2, 5, 66, 1, 'cooperative'],
    [4, 4, 7, 13, 1, 'cooperative'],
    [3, 1, 9, 130, 1, 'cooperative'],
    [6, 2, 5, 9, 3, 'cooperative'],
    // Vec4 rows summed in position groups (head dim 64: 4 groups), and more vectors than invocations (scalar 65).
    [4, 2, 64, 100, 2, 'cooperative'],
    [2, 1, 65, 20, 1, 'cooperative'],
    // An invocation per head: scalar rows (head dim 5), vec4 rows (8), past a workgroup of heads (70, and 4 × 18).
    [6, 2, 5, 66, 1, 'row'],
    [4, 4, 8, 13, 1, 'row'],
    [70, 10, 8, 3, 1, 'row'],
    [3, 1, 8, 0, 1, 'row'],
    [18, 6, 8, 5, 4, 'row'],
  ] as const) {
    it(`matches its CPU twin: ${layout}, ${rows} × ${heads} heads over ${kvHeads}, head dim ${headDim}, position ${position}`, async () => {
      const { device } = gpu();
      const k = new DecodeAttentionKernels(device, layout);
      const maxLen = position + 3;
      const width = kvHeads * headDim;
      const q = randomUniform(rows * heads * headDim, 5, -2, 2);
      const kc = randomUniform(rows * maxLen * width, 6, -2, 2);
      const vc = randomUniform(rows * maxLen * width, 7);
      // Each sequence's cache rows past the position hold garbage that must never be read.
      for (let r = 0; r < rows; r++) {
        kc.fill(1e6, (r * maxLen + position + 1) * width, (r + 1) * maxLen * width);
        vc.fill(Number.NaN, (r * maxLen + position + 1) * width, (r + 1) * maxLen * width);
      }
      const out = createStorageBuffer(device, rows * heads * headDim * 4);
      const shape = { heads, kvHeads, headDim, maxLen, rows };
      const op = k.attendOp(
        uploadBuffer(device, Uint32Array.of(position)),
        uploadBuffer(device, q),
        uploadBuffer(device, kc),
        uploadBuffer(device, vc),
        createStorageBuffer(device, rows * heads * maxLen * 4),
        out,
        shape,
      );
      const got = await runAndRead(device, [op], out);
      expect(maxRelativeError(got, decodeAttentionCpu(q, kc, vc, position, shape))).toBeLessThan(1e-5);
    });
  }
});
