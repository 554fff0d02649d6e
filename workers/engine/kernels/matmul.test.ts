import { describe, expect, it } from 'vitest';
import { packHalves, roundToHalf } from '../../../core/float16';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, uploadBuffer } from '../gpu/buffers';
import { dropoutMaskCpu, throughMaskCpu } from './dropout.cpu';
import {
  DEFAULT_MATMUL_TILE,
  MatmulKernel,
  type MatmulShape,
  type MatmulVariant,
  resolveMatmulShape,
  vectorKFits,
} from './matmul';
import { matmulCpu } from './matmul.cpu';
import { dequantize, QUANT_FORMATS, quantize } from './quant';

const gpu = setupTestGpu();

/** Elements each buffer must hold for `shape`, offsets and batch strides included. */
function extent(shape: MatmulShape, v: Pick<MatmulVariant, 'transA' | 'transB'>) {
  const s = resolveMatmulShape(shape, v);
  const last = (offset: number, stride: number, rows: number, ld: number, cols: number) =>
    offset + (s.batch - 1) * stride + (rows - 1) * ld + cols;
  const lastB = (offset: number, stride: number, rows: number, ld: number, cols: number) =>
    offset + Math.floor((s.batch - 1) / s.batchDivB) * stride + (rows - 1) * ld + cols;
  return {
    a: v.transA ? last(s.offsetA, s.strideA, s.K, s.lda, s.M) : last(s.offsetA, s.strideA, s.M, s.lda, s.K),
    b: v.transB ? lastB(s.offsetB, s.strideB, s.N, s.ldb, s.K) : lastB(s.offsetB, s.strideB, s.K, s.ldb, s.N),
    c: last(s.offsetC, s.strideC, s.M, s.ldc, s.N),
  };
}

async function check(variant: MatmulVariant, shape: MatmulShape, seed: number) {
  const { device } = gpu();
  const n = extent(shape, variant);
  const a = randomUniform(n.a, seed);
  const b = randomUniform(n.b, seed + 1);
  const c = randomUniform(n.c, seed + 2);
  const expected = Float64Array.from(c);
  matmulCpu(a, b, expected, shape, variant);

  const kernel = new MatmulKernel(device, variant);
  const buffers = [uploadBuffer(device, a), uploadBuffer(device, b), uploadBuffer(device, c)];
  const got = await runAndRead(device, [kernel.op(buffers[0], buffers[1], buffers[2], shape)], buffers[2], n.c * 4);
  for (const buffer of buffers) buffer.destroy();
  expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
  // Elements of C outside the written matrices (before the offset, between strided rows) are untouched.
  const written = new Float64Array(n.c).fill(Number.NaN);
  matmulCpu(a, b, written, { ...shape, beta: 0 }, variant);
  for (let i = 0; i < n.c; i++) if (Number.isNaN(written[i])) expect(got[i]).toBe(c[i]);
}

describe('matmul kernel against its CPU twin', () => {
  const layouts = [
    { transA: false, transB: true, name: 'x·Wᵀ (forward)' },
    { transA: false, transB: false, name: 'dy·W (input gradient)' },
    { transA: true, transB: false, name: 'dyᵀ·x (weight gradient)' },
    { transA: true, transB: true, name: 'Aᵀ·Bᵀ' },
  ];
  const tiles = [
    { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
    { tileM: 8, tileN: 8, workgroupX: 4, workgroupY: 8 },
    { tileM: 4, tileN: 8, workgroupX: 16, workgroupY: 4 },
    { tiled: true, tileM: 4, tileN: 4, workgroupX: 16, workgroupY: 16 },
    { tiled: true, tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
    { tiled: true, tileM: 4, tileN: 8, workgroupX: 8, workgroupY: 16 },
    // K in slices within the workgroup: K = 53 leaves the last round's second slice (or last three) empty or short.
    { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 },
    { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 4 },
  ] as const;
  for (const layout of layouts) {
    for (const tile of tiles) {
      const family = 'tiled' in tile ? `tiled${'kSlices' in tile ? ` in ${tile.kSlices} K slices` : ''}` : 'registers';
      it(`${layout.name}, ${family} ${tile.tileM}x${tile.tileN} per invocation, awkward sizes`, async () => {
        const variant = { ...tile, transA: layout.transA, transB: layout.transB };
        await check(variant, { M: 37, N: 29, K: 53 }, 10);
        await check(variant, { M: 1, N: 67, K: 5 }, 20);
        await check(variant, { M: 70, N: 3, K: 1 }, 30);
      });
    }
  }

  it('batches with strides and offsets, alpha, and accumulation into C (beta = 1)', async () => {
    const tiled = {
      tiled: true,
      tileM: 4,
      tileN: 4,
      workgroupX: 16,
      workgroupY: 16,
      transA: true,
      transB: false,
    } as const;
    await check(tiled, { M: 70, N: 9, K: 33, batch: 3, alpha: 0.125, beta: 1, offsetA: 5, offsetB: 7, offsetC: 3 }, 45);
    const variant = { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, transA: false, transB: true } as const;
    await check(
      variant,
      { M: 13, N: 9, K: 11, batch: 3, alpha: 0.125, beta: 1, offsetA: 5, offsetB: 7, offsetC: 3 },
      40,
    );
    // A sub-matrix of a wider row-major buffer (lda, ldc > the dense width), the way heads are sliced.
    await check(variant, { M: 6, N: 5, K: 4, batch: 2, lda: 20, ldc: 12, strideA: 4, strideC: 5, strideB: 20 }, 50);
  });

  it('shares one B matrix between consecutive batch entries (grouped-query attention)', async () => {
    for (const transB of [true, false]) {
      for (const tiled of [false, true]) {
        const variant = { tiled, tileM: 4, tileN: 4, workgroupX: 16, workgroupY: 4, transA: false, transB } as const;
        await check(variant, { M: 7, N: 7, K: 6, batch: 6, batchDivB: 3 }, 60);
      }
    }
  });

  it('does not read C when beta is 0, so a NaN-filled output is fully overwritten', async () => {
    const { device } = gpu();
    const variant = { tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, transA: false, transB: true } as const;
    const shape = { M: 9, N: 10, K: 7 };
    const a = randomUniform(63, 1);
    const b = randomUniform(70, 2);
    const kernel = new MatmulKernel(device, variant);
    const [bufA, bufB, bufC] = [
      uploadBuffer(device, a),
      uploadBuffer(device, b),
      uploadBuffer(device, new Float32Array(90).fill(Number.NaN)),
    ];
    const got = await runAndRead(device, [kernel.op(bufA, bufB, bufC, shape)], bufC);
    const expected = new Float64Array(90);
    matmulCpu(a, b, expected, shape, variant);
    expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
    for (const buffer of [bufA, bufB, bufC]) buffer.destroy();
  });
});

describe('createStorageBuffer', () => {
  it('rounds sizes up to whole 4-byte words', () => {
    const buffer = createStorageBuffer(gpu().device, 6);
    expect(buffer.size).toBe(8);
    buffer.destroy();
  });
});

describe('matmul with fp16 B (frozen weights at half the memory)', () => {
  for (const tiled of [false, true]) {
    for (const transB of [true, false]) {
      it(`${tiled ? 'tiled' : 'registers'}, transB ${transB}, odd offsets into B`, async () => {
        const { device } = gpu();
        const variant = {
          tiled,
          halfB: true,
          tileM: 4,
          tileN: 4,
          workgroupX: 8,
          workgroupY: 8,
          transA: false,
          transB,
        } as const;
        const shape = { M: 19, N: 13, K: 21, offsetB: 3, alpha: 1.5 };
        const a = randomUniform(19 * 21, 1);
        const b = roundToHalf(randomUniform(3 + 13 * 21, 2, -2, 2));
        const expected = new Float64Array(19 * 13);
        matmulCpu(a, b, expected, shape, variant);
        const kernel = new MatmulKernel(device, variant);
        const c = createStorageBuffer(device, expected.length * 4);
        const got = await runAndRead(
          device,
          [kernel.op(uploadBuffer(device, a), uploadBuffer(device, packHalves(b)), c, shape)],
          c,
        );
        expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
      });
    }
  }
});

describe('matmul with a quantized B (a frozen base weight at 8 or 4 bits)', () => {
  const families = [
    ['registers', { tileM: 4, tileN: 8, workgroupX: 8, workgroupY: 4, vectorK: true }],
    ['tiled', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }],
    ['tiled in 2 K slices', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 }],
  ] as const;
  for (const format of QUANT_FORMATS) {
    for (const [family, tile] of families) {
      it(`${format}, ${family}: x·Wᵀ and dy·W against the dequantized W, with a low-rank term`, async () => {
        const { device } = gpu();
        // W [out 37, in 128]: two 64-weight groups a row, odd rows and tokens.
        const [out, inDim, tokens] = [37, 128, 19];
        const w = randomUniform(out * inDim, 7, -0.1, 0.1);
        const words = quantize(w, out, inDim, format);
        const dequantized = Float64Array.from(dequantize(words, out, inDim, format));
        const bufW = uploadBuffer(device, words);
        for (const transB of [true, false]) {
          // Forward y [T, out] = x [T, in] · Wᵀ; input gradient dx [T, in] = dy [T, out] · W.
          const shape = transB ? { M: tokens, N: out, K: inDim, alpha: 1.5 } : { M: tokens, N: inDim, K: out, beta: 1 };
          const variant = { ...tile, transA: false, transB, quantB: format, lowRank: true };
          const a = randomUniform(shape.M * shape.K, 8);
          const c = randomUniform(shape.M * shape.N, 9);
          const low = { rank: 3, scale: 0.5, l: randomUniform(shape.M * 3, 10), r: randomUniform(shape.N * 3, 11) };
          const expected = Float64Array.from(c);
          matmulCpu(a, dequantized, expected, shape, variant, low);
          const [bufA, bufC, bufL, bufR] = [a, c, low.l, low.r].map((x) => uploadBuffer(device, x));
          const op = new MatmulKernel(device, variant).op(bufA, bufW, bufC, shape, {
            lowRank: { ...low, l: bufL, r: bufR },
          });
          expect(maxRelativeError(await runAndRead(device, [op], bufC), expected)).toBeLessThan(1e-5);
        }
      });
    }
  }

  it("reads a slice of a q8 table's rows (the LM head's vocabulary) from its row offset", async () => {
    const { device } = gpu();
    const [rows, d, tokens, first, slice] = [40, 64, 5, 8, 22];
    const table = randomUniform(rows * d, 3, -0.2, 0.2);
    const words = quantize(table, rows, d, 'q8');
    const part = Float64Array.from(dequantize(words, rows, d, 'q8').subarray(first * d, (first + slice) * d));
    const bufW = uploadBuffer(device, words);
    // logits [T, slice] = x · E_sliceᵀ, and dx [T, d] = dlogits · E_slice; registers (K in vectors) and tiled.
    const tiles = [
      { ...DEFAULT_MATMUL_TILE, vectorK: true },
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
    ] as const;
    for (const [transB, tile] of [true, false].flatMap((t) => tiles.map((tile) => [t, tile] as const))) {
      const shape = transB
        ? { M: tokens, N: slice, K: d, offsetB: first * d }
        : { M: tokens, N: d, K: slice, offsetB: first * d };
      const variant = { ...tile, transA: false, transB, quantB: 'q8' as const };
      const a = randomUniform(shape.M * shape.K, 4);
      const expected = new Float64Array(shape.M * shape.N);
      matmulCpu(a, part, expected, { ...shape, offsetB: 0 }, variant);
      const c = createStorageBuffer(device, expected.length * 4);
      const op = new MatmulKernel(device, variant).op(uploadBuffer(device, a), bufW, c, shape);
      expect(maxRelativeError(await runAndRead(device, [op], c), expected)).toBeLessThan(1e-5);
    }
  });

  it('refuses a quantized B that is not a whole matrix', () => {
    const { device } = gpu();
    const buffer = createStorageBuffer(device, 64);
    const kernel = new MatmulKernel(device, { ...DEFAULT_MATMUL_TILE, transA: false, transB: true, quantB: 'q4' });
    expect(() => kernel.op(buffer, buffer, buffer, { M: 2, N: 2, K: 32, offsetB: 32 })).toThrow(
      /a quantized B is a whole matrix \(offset 0, ldb 32, batch 1\)/,
    );
    const q8 = new MatmulKernel(device, { ...DEFAULT_MATMUL_TILE, transA: false, transB: true, quantB: 'q8' });
    expect(() => q8.op(buffer, buffer, buffer, { M: 2, N: 2, K: 32, offsetB: 16 })).toThrow(
      /a quantized B is a whole matrix \(from a whole row, ldb 32, batch 1\)/,
    );
  });
});

describe('matmul reading rows along K as vectors (x·Wᵀ on CPU adapters)', () => {
  const tiles = [
    { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8 },
    { tileM: 4, tileN: 8, workgroupX: 16, workgroupY: 4 },
  ] as const;
  for (const tile of tiles) {
    const variant = { ...tile, vectorK: true, transA: false, transB: true } as const;
    it(`fp32, ${tile.tileM}x${tile.tileN}: whole vectors, batched with offsets and strides, and the fallback`, async () => {
      const shapes: [MatmulShape, boolean][] = [
        [{ M: 37, N: 29, K: 52 }, true],
        [{ M: 13, N: 9, K: 12, batch: 6, batchDivB: 3, alpha: 0.5, beta: 1, offsetA: 4, offsetB: 8, offsetC: 3 }, true],
        // K (and so the rows) not whole vectors: the plain register kernel.
        [{ M: 37, N: 29, K: 53 }, false],
        [{ M: 5, N: 6, K: 8, offsetA: 2 }, false],
      ];
      for (const [i, [shape, fits]] of shapes.entries()) {
        expect(vectorKFits(shape, variant)).toBe(fits);
        await check(variant, shape, 70 + 10 * i);
      }
    });

    it(`fp16 B, ${tile.tileM}x${tile.tileN}: eight halves per load, and the fallback for odd offsets`, async () => {
      const { device } = gpu();
      const half = { ...variant, halfB: true } as const;
      for (const [shape, fits] of [
        [{ M: 19, N: 13, K: 24, offsetB: 8, alpha: 1.5 }, true],
        [{ M: 19, N: 13, K: 24, offsetB: 4, alpha: 1.5 }, false],
      ] as const) {
        expect(vectorKFits(shape, half)).toBe(fits);
        const a = randomUniform(shape.M * shape.K, 1);
        const b = roundToHalf(randomUniform(shape.offsetB + shape.N * shape.K, 2, -2, 2));
        const expected = new Float64Array(shape.M * shape.N);
        matmulCpu(a, b, expected, shape, half);
        const c = createStorageBuffer(device, expected.length * 4);
        const kernel = new MatmulKernel(device, half);
        const got = await runAndRead(
          device,
          [kernel.op(uploadBuffer(device, a), uploadBuffer(device, packHalves(b)), c, shape)],
          c,
        );
        expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
      }
    });
  }
});

describe('matmul with a low-rank term (LoRA fused into the base product)', () => {
  const families = [
    ['registers', { tileM: 4, tileN: 8, workgroupX: 8, workgroupY: 4 }],
    ['registers, K in vectors', { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8, vectorK: true }],
    ['tiled', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }],
    [
      'registers, K in vectors, fp16 B',
      { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8, vectorK: true, halfB: true },
    ],
    ['tiled, fp16 B', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, halfB: true }],
    [
      'tiled in 4 K slices, fp16 B',
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, halfB: true, kSlices: 4 },
    ],
  ] as const;
  // The input gradient's term with LoRA dropout carries the module's mask (dy·W + dropout'(d(xAᵀ) A)).
  const cases = [
    [true, false],
    [false, false],
    [false, true],
  ] as const;
  for (const [family, tile] of families) {
    for (const [transB, masked] of cases) {
      const product = transB ? 'x·Wᵀ + s (xAᵀ)Bᵀ' : masked ? "dy·W + dropout'(d(xAᵀ) A)" : 'dy·W + d(xAᵀ) A';
      it(`${family}, ${product}, rank 5, offsets, accumulating`, async () => {
        const { device } = gpu();
        const variant = { ...tile, transA: false, transB, lowRank: true, maskedLowRank: masked };
        // K = 52 keeps the vector kernel on its vector path; 37 x 29 leaves partial blocks.
        const shape = { M: 37, N: 29, K: 52, beta: 1, alpha: 0.75 };
        const rank = 5;
        const low = { rank, offsetL: 3, offsetR: 7, scale: 1.5 };
        const a = randomUniform(37 * 52, 1);
        const half = 'halfB' in tile;
        const b = half ? roundToHalf(randomUniform(29 * 52, 2)) : randomUniform(29 * 52, 2);
        const c = randomUniform(37 * 29, 3);
        const l = randomUniform(3 + 37 * rank, 4);
        const r = randomUniform(7 + 29 * rank, 5);
        const expected = Float64Array.from(c);
        const mask = { state: Uint32Array.of(4242, 1), module: 3, p: 0.4 };
        const maskValues = dropoutMaskCpu(37 * 29, 4242, 3, 0.4);
        matmulCpu(a, b, expected, shape, variant, { ...low, l, r, mask: masked ? maskValues : undefined });
        const kernel = new MatmulKernel(device, variant);
        const [bufA, bufB, bufC, bufL, bufR, state] = [a, half ? packHalves(b) : b, c, l, r, mask.state].map((x) =>
          uploadBuffer(device, x),
        );
        const gpuMask = masked ? { ...mask, state } : undefined;
        const op = kernel.op(bufA, bufB, bufC, shape, { lowRank: { ...low, l: bufL, r: bufR, mask: gpuMask } });
        expect(maxRelativeError(await runAndRead(device, [op], bufC), expected)).toBeLessThan(1e-5);
        // The term moves the result: without it the same product differs.
        const plain = Float64Array.from(c);
        matmulCpu(a, b, plain, shape, variant);
        expect(maxRelativeError(plain, expected)).toBeGreaterThan(1e-2);
      });
    }
  }

  it('refuses a low-rank term the variant was not compiled for, and one it was compiled for but not given', () => {
    const { device } = gpu();
    const buffer = createStorageBuffer(device, 64);
    const plain = new MatmulKernel(device, { ...DEFAULT_MATMUL_TILE, transA: false, transB: true });
    const fused = new MatmulKernel(device, { ...DEFAULT_MATMUL_TILE, transA: false, transB: true, lowRank: true });
    const shape = { M: 2, N: 2, K: 2 };
    const low = { l: buffer, r: buffer, rank: 1, scale: 1 };
    expect(() => plain.op(buffer, buffer, buffer, shape, { lowRank: low })).toThrow(
      /compiled for no low-rank term, not a low-rank/,
    );
    expect(() => fused.op(buffer, buffer, buffer, shape)).toThrow(/compiled for a low-rank term, not no low-rank term/);
  });
});

describe('matmul with an operand read through a dropout mask (LoRA dropout, never written out)', () => {
  // x Aᵀ reads dropout(x) as A; dA += d(xAᵀ)ᵀ dropout(x) reads it as B.
  const cases = [
    ['registers, x·Aᵀ', 'a', { tileM: 4, tileN: 8, workgroupX: 8, workgroupY: 4 }, false, true],
    [
      'registers, K in vectors, x·Aᵀ',
      'a',
      { tileM: 8, tileN: 8, workgroupX: 8, workgroupY: 8, vectorK: true },
      false,
      true,
    ],
    ['tiled, x·Aᵀ', 'a', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }, false, true],
    ['registers, d(xAᵀ)ᵀ·x', 'b', { tileM: 4, tileN: 8, workgroupX: 8, workgroupY: 4 }, true, false],
    ['tiled, d(xAᵀ)ᵀ·x', 'b', { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 }, true, false],
    [
      'tiled in 2 K slices, x·Aᵀ',
      'a',
      { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 },
      false,
      true,
    ],
  ] as const;
  for (const [name, operand, tile, transA, transB] of cases) {
    it(`${name}: the operand from its offset, element i scaled by the mask's value i`, async () => {
      const { device } = gpu();
      const variant = { ...tile, transA, transB, maskedOperand: operand };
      // 37 x 29 over K = 52 (whole vectors): partial blocks; the masked operand sits 8 elements into its buffer.
      const shape = { M: 37, N: 29, K: 52, offsetA: operand === 'a' ? 8 : 0, offsetB: operand === 'b' ? 8 : 0 };
      const a = randomUniform(8 + 37 * 52, 1);
      const b = randomUniform(8 + 29 * 52, 2);
      const mask = dropoutMaskCpu(52 * (operand === 'a' ? 37 : 29), 77, 5, 0.3);
      const dropped = throughMaskCpu(operand === 'a' ? a : b, mask, 8);
      const expected = new Float64Array(37 * 29);
      matmulCpu(operand === 'a' ? dropped : a, operand === 'b' ? dropped : b, expected, shape, variant);
      const state = uploadBuffer(device, Uint32Array.of(77, 1));
      const c = createStorageBuffer(device, 37 * 29 * 4);
      const op = new MatmulKernel(device, variant).op(uploadBuffer(device, a), uploadBuffer(device, b), c, shape, {
        operandMask: {
          operand,
          state,
          module: 5,
          p: 0.3,
        },
      });
      expect(maxRelativeError(await runAndRead(device, [op], c), expected)).toBeLessThan(1e-5);
    });
  }

  it('reads the operand as it is with dropout off (evaluation); a dropped value counts 0 even when not finite', async () => {
    const { device } = gpu();
    const variant = { ...DEFAULT_MATMUL_TILE, transA: false, transB: true, maskedOperand: 'a' } as const;
    const shape = { M: 9, N: 7, K: 11 };
    const a = randomUniform(9 * 11, 1);
    const b = randomUniform(7 * 11, 2);
    const kernel = new MatmulKernel(device, variant);
    const run = async (x: Float32Array, on: number) => {
      const c = createStorageBuffer(device, 9 * 7 * 4);
      const state = uploadBuffer(device, Uint32Array.of(12, on));
      const mask = { operand: 'a', state, module: 1, p: 0.5 } as const;
      return runAndRead(
        device,
        [kernel.op(uploadBuffer(device, x), uploadBuffer(device, b), c, shape, { operandMask: mask })],
        c,
      );
    };
    const plain = new Float64Array(9 * 7);
    matmulCpu(a, b, plain, shape, variant);
    expect(maxRelativeError(await run(a, 0), plain)).toBeLessThan(1e-6);
    const values = dropoutMaskCpu(9 * 11, 12, 1, 0.5);
    const expected = new Float64Array(9 * 7);
    matmulCpu(throughMaskCpu(a, values), b, expected, shape, variant);
    const infinite = Float32Array.from(a);
    infinite[values.indexOf(0)] = Number.POSITIVE_INFINITY;
    expect(maxRelativeError(await run(infinite, 1), expected)).toBeLessThan(1e-5);
  });

  it('refuses a mask the variant was not compiled for, and one it was compiled for but not given', () => {
    const { device } = gpu();
    const buffer = createStorageBuffer(device, 64);
    const shape = { M: 2, N: 2, K: 2 };
    const plain = new MatmulKernel(device, { ...DEFAULT_MATMUL_TILE, transA: false, transB: true });
    const masked = new MatmulKernel(device, {
      ...DEFAULT_MATMUL_TILE,
      transA: false,
      transB: true,
      maskedOperand: 'a',
    });
    const mask = { operand: 'a', state: buffer, module: 0, p: 0.1 } as const;
    expect(() => plain.op(buffer, buffer, buffer, shape, { operandMask: mask })).toThrow(
      /compiled for no mask, not a mask on operand A/,
    );
    expect(() => masked.op(buffer, buffer, buffer, shape)).toThrow(/compiled for a mask on operand A, not no mask/);
  });
});
