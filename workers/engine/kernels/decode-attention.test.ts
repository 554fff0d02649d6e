import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { submitOps } from '../gpu/ops';
import { DecodeAttentionKernels, type DecodeShape } from './decode-attention';
import { decodeAttentionCpu } from './decode-attention.cpu';
import { rmsnormForwardCpu } from './rmsnorm.cpu';
import { ropeCpu } from './rope.cpu';
import type { RowLayout } from './wgsl';

const gpu = setupTestGpu();

describe('decode attention over a key-value cache, rotation and append included', () => {
  for (const variant of [
    [6, 2, 6, 0, 1, 'cooperative'],
    [6, 2, 6, 66, 1, 'cooperative'],
    [4, 4, 10, 13, 1, 'cooperative'],
    [3, 1, 14, 130, 1, 'cooperative'],
    [6, 2, 6, 9, 3, 'cooperative'],
    // Vec4 rows summed in position groups (head dim 64: 4 groups), and more vectors than invocations (scalar 130).
    [4, 2, 64, 100, 2, 'cooperative'],
    [2, 1, 130, 20, 1, 'cooperative'],
    // An invocation per head: scalar rows (head dim 6; 12, whose halves are not whole vec4s), vec4 rows (8), past
    // a workgroup of heads (70, and 4 × 18).
    [6, 2, 6, 66, 1, 'row'],
    [4, 4, 8, 13, 1, 'row'],
    [4, 2, 12, 7, 1, 'row'],
    [70, 10, 8, 3, 1, 'row'],
    [3, 1, 8, 0, 1, 'row'],
    [18, 6, 8, 5, 4, 'row'],
    // Qwen3's per-head norms of q and k before the rotation.
    [6, 2, 8, 9, 2, 'cooperative', true],
    [4, 2, 6, 5, 1, 'cooperative', true],
    [6, 2, 8, 9, 2, 'row', true],
    [4, 2, 6, 5, 1, 'row', true],
    // Gemma's local layers: the last `window` positions only (the older ones hold values that would dominate),
    // its own score scale; windows wider than the positions so far, and past a workgroup.
    [6, 2, 8, 9, 2, 'cooperative', true, 4],
    [4, 2, 64, 100, 2, 'cooperative', false, 70],
    [2, 1, 130, 20, 1, 'cooperative', false, 7],
    [6, 2, 6, 3, 1, 'cooperative', false, 8],
    [6, 2, 8, 9, 2, 'row', true, 4],
    [18, 6, 8, 5, 4, 'row', false, 2],
  ] as const) {
    const [heads, kvHeads, headDim, position, rows, layout] = variant;
    const normed = (variant as readonly unknown[])[6] === true;
    const window = (variant as readonly unknown[])[7] as number | undefined;
    it(`matches rope, the append and the CPU twin: ${layout}, ${rows} × ${heads} heads over ${kvHeads}, head dim ${headDim}, position ${position}${normed ? ', q and k normed' : ''}${window ? `, window ${window}` : ''}`, async () => {
      const { device } = gpu();
      const kernels = new DecodeAttentionKernels(device, layout as RowLayout);
      const maxLen = position + 3;
      const width = kvHeads * headDim;
      const shape: DecodeShape = { heads, kvHeads, headDim, maxLen, rows, ...(window && { window, scale: 0.3 }) };
      const q = randomUniform(rows * heads * headDim, 5, -2, 2);
      const [k, v] = [randomUniform(rows * width, 8, -2, 2), randomUniform(rows * width, 9)];
      const [cos, sin] = [randomUniform(headDim / 2, 13), randomUniform(headDim / 2, 14)];
      const kc = randomUniform(rows * maxLen * width, 6, -2, 2);
      const vc = randomUniform(rows * maxLen * width, 7);
      // Each sequence's cache rows from the position on hold garbage: row p is the new token's to fill, and the
      // rows past it must never be read.
      for (let r = 0; r < rows; r++) {
        kc.fill(1e6, (r * maxLen + position) * width, (r + 1) * maxLen * width);
        vc.fill(Number.NaN, (r * maxLen + position) * width, (r + 1) * maxLen * width);
        // Before the window likewise: positions a local layer no longer sees.
        const oldest = window === undefined ? 0 : Math.max(0, position + 1 - window);
        kc.fill(1e6, r * maxLen * width, (r * maxLen + oldest) * width);
        vc.fill(Number.NaN, r * maxLen * width, (r * maxLen + oldest) * width);
      }
      const [qNorm, kNorm] = [randomUniform(headDim, 15, 0.5, 1.5), randomUniform(headDim, 16, 0.5, 1.5)];
      const eps = 1e-6;
      // Expected: the RMSNorm twin per head where normed, then the rope kernel's twin at one position (seq 1, a
      // batch of rows), k and v appended at row p.
      const rope = (x: Float32Array, n: number, weight: Float32Array) =>
        ropeCpu('forward', normed ? rmsnormForwardCpu(x, weight, rows * n, headDim, eps).y : x, cos, sin, {
          batch: rows,
          seq: 1,
          heads: n,
          headDim,
        });
      const kExpected = Float64Array.from(kc);
      const vExpected = Float64Array.from(vc);
      const kRotated = rope(k, kvHeads, kNorm);
      for (let r = 0; r < rows; r++) {
        kExpected.set(kRotated.subarray(r * width, (r + 1) * width), (r * maxLen + position) * width);
        vExpected.set(v.subarray(r * width, (r + 1) * width), (r * maxLen + position) * width);
      }
      const expected = decodeAttentionCpu(rope(q, heads, qNorm), kExpected, vExpected, position, shape);

      const [kCache, vCache] = [uploadBuffer(device, kc), uploadBuffer(device, vc)];
      const out = createStorageBuffer(device, rows * heads * headDim * 4);
      const upload = (x: Float32Array) => uploadBuffer(device, x);
      const rotary = new Float32Array(headDim);
      rotary.set(cos);
      rotary.set(sin, headDim / 2);
      const weights = new Float32Array(2 * headDim);
      weights.set(qNorm);
      weights.set(kNorm, headDim);
      const op = kernels.op(
        {
          position: uploadBuffer(device, Uint32Array.of(position)),
          ...{ q: upload(q), k: upload(k), v: upload(v), rotary: upload(rotary) },
          ...{ kCache, vCache, out },
          scores: createStorageBuffer(device, rows * heads * maxLen * 4),
        },
        shape,
        normed ? { weights: upload(weights), eps } : undefined,
      );
      // Within the ten storage buffers Chrome gives a kernel on many devices, normed and cooperative too.
      expect(op.kind === 'dispatch' && op.pipeline).toBeTruthy();
      submitOps(device, [op]);
      expect(maxRelativeError(await readFloat32(device, out), expected)).toBeLessThan(1e-5);
      // Row p holds the new keys and values; every other row is as it was (NaN past p included).
      const sameBits = (a: Float32Array, b: Float64Array) =>
        a.every((x, i) =>
          Number.isNaN(x) ? Number.isNaN(b[i]) : Math.abs(x - b[i]) <= 1e-6 * Math.max(1, Math.abs(b[i])),
        );
      expect(sameBits(await readFloat32(device, kCache), kExpected)).toBe(true);
      expect(sameBits(await readFloat32(device, vCache), vExpected)).toBe(true);
    });
  }

  it('refuses an odd head size, which rotary embeddings cannot pair', () => {
    const { device } = gpu();
    const buffer = createStorageBuffer(device, 64);
    const io = { position: buffer, q: buffer, k: buffer, v: buffer, rotary: buffer };
    const rest = { kCache: buffer, vCache: buffer, scores: buffer, out: buffer };
    expect(() =>
      new DecodeAttentionKernels(device).op({ ...io, ...rest }, { heads: 1, kvHeads: 1, headDim: 5, maxLen: 4 }),
    ).toThrow('rotary embeddings need an even head size, not 5');
  });
});
