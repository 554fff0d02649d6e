import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { uploadBuffer } from '../gpu/buffers';
import { dropoutMaskCpu, throughMaskCpu } from './dropout.cpu';
import { GroupedMatmul, type GroupedProduct } from './grouped-matmul';
import type { MatmulShape } from './matmul';
import { matmulCpu } from './matmul.cpu';

const gpu = setupTestGpu();

/** A product over CPU arrays: the operands (named by which array they come from) and how to read them. */
interface Case {
  a: number;
  b: number;
  transA: boolean;
  transB: boolean;
  shape: MatmulShape;
  mask?: { operand: 'a' | 'b'; module: number };
}

const SEED = 77;
const P = 0.3;

/**
 * Runs the cases as grouped dispatches (how many it returns) and as CPU products one after another, into the same
 * C.
 */
async function check(sources: Float32Array[], cases: Case[], cLength: number) {
  const { device } = gpu();
  const c = randomUniform(cLength, 99);
  const expected = Float64Array.from(c);
  for (const x of cases) {
    const operands = [sources[x.a], sources[x.b]].map((values, i) => {
      const operand = i === 0 ? 'a' : 'b';
      if (x.mask?.operand !== operand) return values;
      const offset = (operand === 'a' ? x.shape.offsetA : x.shape.offsetB) ?? 0;
      return throughMaskCpu(values, dropoutMaskCpu(values.length - offset, SEED, x.mask.module, P), offset);
    });
    matmulCpu(operands[0], operands[1], expected, x.shape, x);
  }
  const buffers = sources.map((s) => uploadBuffer(device, s));
  const state = uploadBuffer(device, Uint32Array.of(SEED, 1));
  const products: GroupedProduct[] = cases.map((x) => ({
    a: buffers[x.a],
    b: buffers[x.b],
    transA: x.transA,
    transB: x.transB,
    shape: x.shape,
    mask: x.mask && { ...x.mask, state, p: P },
  }));
  // GPUs' block (its K in 4 slices) and CPU adapters', and one of odd rows (its K in 8 slices, more than some
  // products' K).
  const counts = new Set<number>();
  for (const [block, slices] of [
    [{ rows: 4, cols: 4 }, 4],
    [{ rows: 8, cols: 8 }, 1],
    [{ rows: 3, cols: 4 }, 8],
  ] as const) {
    const bc = uploadBuffer(device, c);
    const ops = new GroupedMatmul(device, block, slices).ops(products, bc);
    const got = await runAndRead(device, ops, bc);
    expect(maxRelativeError(got, expected), `block ${block.rows} x ${block.cols}, ${slices} K slices`).toBeLessThan(
      1e-5,
    );
    counts.add(ops.length);
  }
  expect(counts.size).toBe(1);
  return [...counts][0];
}

describe('grouped matmul against the CPU twin', () => {
  it('runs products of every transpose, awkward shapes, offsets and leading dimensions in one dispatch', async () => {
    const sources = [0, 1, 2, 3].map((i) => randomUniform(3000, i + 1));
    const dispatches = await check(
      sources,
      [
        { a: 0, b: 1, transA: false, transB: false, shape: { M: 7, N: 5, K: 13, offsetA: 3, offsetB: 9 } },
        { a: 1, b: 2, transA: true, transB: false, shape: { M: 9, N: 6, K: 11, lda: 10, offsetC: 40, ldc: 8 } },
        {
          a: 2,
          b: 0,
          transA: false,
          transB: true,
          shape: { M: 70, N: 3, K: 17, offsetA: 1, offsetB: 2, offsetC: 120, alpha: 0.5, beta: 1 },
        },
        { a: 3, b: 3, transA: true, transB: true, shape: { M: 5, N: 66, K: 9, offsetC: 400, ldc: 70, beta: 0.25 } },
      ],
      800,
    );
    expect(dispatches).toBe(1);
  });

  it('packs products reading more buffers than one dispatch binds into several, in order', async () => {
    // Nine products over eight buffers, each accumulating into its own part of C (the products of one dispatch run
    // at once), but the ninth, in the second dispatch, into the first's part: it must add to what the first wrote.
    const sources = Array.from({ length: 8 }, (_, i) => randomUniform(200, i + 10));
    const cases: Case[] = Array.from({ length: 9 }, (_, i) => ({
      a: i % 8,
      b: (i + 1) % 8,
      transA: i % 2 === 1,
      transB: i % 3 === 1,
      shape: { M: 6, N: 5, K: 7, beta: 1, alpha: 1 + i / 10, offsetC: (i % 8) * 30 },
    }));
    expect(await check(sources, cases, 8 * 30)).toBe(2);
  });

  it("reads an operand through each product's own dropout mask, from the operand's offset", async () => {
    // LoRA's weight gradients for two modules reading one input x: dB += s dyᵀ (x Aᵀ), dA += d(x Aᵀ)ᵀ dropout(x).
    const [tokens, r, inDim, out] = [19, 4, 23, 10];
    const x = randomUniform(5 + tokens * inDim, 1);
    const dy = randomUniform(tokens * out * 2, 2);
    const xa = randomUniform(tokens * r * 2, 3);
    const dxa = randomUniform(tokens * r * 2, 4);
    const grads = (module: number) => module * (r * inDim + out * r);
    const cases: Case[] = [0, 1].flatMap((module) => [
      {
        a: 1,
        b: 2,
        transA: true,
        transB: false,
        shape: { M: out, N: r, K: tokens, offsetA: module * out, lda: 2 * out, offsetB: module * tokens * r },
      },
      {
        a: 3,
        b: 0,
        transA: true,
        transB: false,
        shape: { M: r, N: inDim, K: tokens, offsetA: module * tokens * r, offsetB: 5, offsetC: grads(module) },
        mask: { operand: 'b' as const, module: module + 3 },
      },
    ]);
    for (const [i, x] of cases.entries()) {
      if (i % 2 === 0) x.shape = { ...x.shape, offsetC: grads(i / 2) + r * inDim, alpha: 0.5, beta: 1 };
      else x.shape = { ...x.shape, beta: 1 };
    }
    // And x Aᵀ's layout, masking A.
    cases.push({
      a: 0,
      b: 3,
      transA: false,
      transB: true,
      shape: { M: tokens, N: r, K: inDim - 3, offsetA: 5, lda: inDim, ldb: inDim, offsetC: 2 * grads(1) },
      mask: { operand: 'a', module: 9 },
    });
    expect(await check([x, dy, xa, dxa], cases, 3 * grads(1))).toBe(1);
  });

  it('refuses what one dispatch cannot bind', () => {
    const { device } = gpu();
    const grouped = new GroupedMatmul(device);
    // The device's storage buffers per stage, but C and the dropout state.
    expect(grouped.maxSources).toBe(Math.min(16, device.limits.maxStorageBuffersPerShaderStage - 2));
    const buffers = Array.from({ length: grouped.maxSources + 1 }, () => uploadBuffer(device, new Float32Array(4)));
    const c = uploadBuffer(device, new Float32Array(4));
    const product = (a: GPUBuffer, b: GPUBuffer): GroupedProduct => ({
      a,
      b,
      transA: false,
      transB: false,
      shape: { M: 1, N: 1, K: 1 },
    });
    expect(() => grouped.op([], c)).toThrow(/1 to 8 products/);
    expect(() => grouped.op([product(buffers[0], c)], c)).toThrow(/cannot be its output/);
    // Products reading two buffers each, one more buffer in all than a dispatch binds (8 products read at most 16,
    // so this needs a device binding fewer, as every adapter here does).
    const last = buffers.length - 1;
    const many = Array.from({ length: Math.ceil(buffers.length / 2) }, (_, i) =>
      product(buffers[2 * i], buffers[Math.min(2 * i + 1, last)]),
    );
    const over = new RegExp(`at most ${grouped.maxSources} operand buffers, not ${grouped.maxSources + 1}`);
    expect(() => grouped.op(many, c)).toThrow(over);
  });
});
