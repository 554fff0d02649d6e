import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, uploadBuffer } from '../gpu/buffers';
import { dropoutMaskCpu, throughMaskCpu } from './dropout.cpu';
import { matmulCpu } from './matmul.cpu';
import { canSplitK, SplitKMatmul } from './split-k';

const gpu = setupTestGpu();

describe('split-K matmul against the CPU twin', () => {
  for (const [transA, transB] of [
    [false, true],
    [false, false],
    [true, false],
    [true, true],
  ]) {
    it(`transA ${transA}, transB ${transB}: slices of K summed, with offsets, alpha and beta`, async () => {
      const { device } = gpu();
      const variant = { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, transA, transB } as const;
      const shape = { M: 37, N: 13, K: 96, offsetA: 3, offsetB: 5, offsetC: 2, ldc: 15, alpha: 0.5, beta: 1 };
      const kernel = new SplitKMatmul(device, variant, 4);
      const a = randomUniform(3 + 37 * 96, 1);
      const b = randomUniform(5 + 13 * 96, 2);
      const c = randomUniform(2 + 37 * 15, 3);
      const expected = Float64Array.from(c);
      matmulCpu(a, b, expected, shape, variant);
      const [ba, bb, bc] = [uploadBuffer(device, a), uploadBuffer(device, b), uploadBuffer(device, c)];
      const scratch = createStorageBuffer(device, kernel.scratchBytes(shape));
      const got = await runAndRead(device, kernel.ops(ba, bb, bc, shape, { scratch }), bc);
      expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
    });
  }

  for (const [transB, masked] of [
    [true, false],
    [false, false],
    [false, true],
  ] as const) {
    it(`transB ${transB}: the reduce pass adds a low-rank term${masked ? ' under a dropout mask' : ''}`, async () => {
      const { device } = gpu();
      const variant = {
        tileM: 4,
        tileN: 4,
        workgroupX: 8,
        workgroupY: 8,
        transA: false,
        transB,
        lowRank: true,
        maskedLowRank: masked,
      } as const;
      const shape = { M: 37, N: 13, K: 96, alpha: 0.5, beta: 1 };
      const low = { rank: 3, offsetL: 2, offsetR: 4, scale: 2 };
      const kernel = new SplitKMatmul(device, variant, 4);
      const [a, b, c] = [37 * 96, 13 * 96, 37 * 13].map((n, i) => randomUniform(n, i + 1));
      const l = randomUniform(2 + 37 * 3, 7);
      const r = randomUniform(4 + 13 * 3, 8);
      const expected = Float64Array.from(c);
      const mask = masked ? dropoutMaskCpu(37 * 13, 99, 2, 0.3) : undefined;
      matmulCpu(a, b, expected, shape, variant, { ...low, l, r, mask });
      const [ba, bb, bc, bl, br, state] = [a, b, c, l, r, Uint32Array.of(99, 1)].map((x) => uploadBuffer(device, x));
      const scratch = createStorageBuffer(device, kernel.scratchBytes(shape));
      const term = { ...low, l: bl, r: br, mask: masked ? { state, module: 2, p: 0.3 } : undefined };
      const got = await runAndRead(device, kernel.ops(ba, bb, bc, shape, { scratch, lowRank: term }), bc);
      expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
    });
  }

  for (const operand of ['a', 'b'] as const) {
    it(`reads operand ${operand.toUpperCase()} through a dropout mask, each slice at its place in the whole`, async () => {
      const { device } = gpu();
      // dA's layout (d(xAᵀ)ᵀ · x) masks B; x·Aᵀ's masks A.
      const [transA, transB] = operand === 'b' ? [true, false] : [false, true];
      const variant = {
        tileM: 4,
        tileN: 4,
        workgroupX: 8,
        workgroupY: 8,
        transA,
        transB,
        maskedOperand: operand,
      } as const;
      const shape = { M: 13, N: 37, K: 96, offsetA: 3, offsetB: 5 };
      const kernel = new SplitKMatmul(device, variant, 4);
      const a = randomUniform(3 + 13 * 96, 1);
      const b = randomUniform(5 + 37 * 96, 2);
      const [masked, offset] = operand === 'a' ? [a, 3] : [b, 5];
      const mask = dropoutMaskCpu(masked.length - offset, 31, 6, 0.25);
      const dropped = throughMaskCpu(masked, mask, offset);
      const expected = new Float64Array(13 * 37);
      matmulCpu(operand === 'a' ? dropped : a, operand === 'b' ? dropped : b, expected, shape, variant);
      const [ba, bb, state] = [a, b, Uint32Array.of(31, 1)].map((x) => uploadBuffer(device, x));
      const bc = createStorageBuffer(device, 13 * 37 * 4);
      const scratch = createStorageBuffer(device, kernel.scratchBytes(shape));
      const ops = kernel.ops(ba, bb, bc, shape, { scratch, operandMask: { operand, state, module: 6, p: 0.25 } });
      expect(maxRelativeError(await runAndRead(device, ops, bc), expected)).toBeLessThan(1e-5);
    });
  }

  it('refuses what it cannot split', () => {
    expect(canSplitK({ M: 4, N: 4, K: 96 }, 4)).toBe(true);
    expect(canSplitK({ M: 4, N: 4, K: 90 }, 4)).toBe(false);
    expect(canSplitK({ M: 4, N: 4, K: 96, batch: 2 }, 4)).toBe(false);
    expect(canSplitK({ M: 4, N: 4, K: 16 }, 4)).toBe(false);
  });
});
