import { describe, expect, it } from 'vitest';
import { mulberry32, randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { buildTokenIndex, EmbeddingKernels } from './embedding';
import { embeddingBackwardCpu, embeddingCpu } from './embedding.cpu';
import { dequantize, quantize } from './quant';

const gpu = setupTestGpu();

describe('buildTokenIndex', () => {
  it('lists each distinct id once with every position that holds it', () => {
    const index = buildTokenIndex([5, 2, 5, 9, 2, 5]);
    const n = 6;
    expect(index[0]).toBe(3);
    const ids = Array.from(index.subarray(1, 1 + 3));
    const starts = index.subarray(1 + n, 1 + n + 4);
    const positions = index.subarray(1 + n + n + 1);
    const byId = Object.fromEntries(ids.map((id, u) => [id, Array.from(positions.subarray(starts[u], starts[u + 1]))]));
    expect(byId).toEqual({ 5: [0, 2, 5], 2: [1, 4], 9: [3] });
  });
});

describe('embedding kernels against the CPU twin, on a table split into chunks', () => {
  it('gathers rows and scatters their gradients, across uneven chunks', async () => {
    const { device } = gpu();
    const k = new EmbeddingKernels(device);
    const [vocab, dim, tokens] = [23, 5, 17];
    const next = mulberry32(4);
    const ids = Uint32Array.from({ length: tokens }, (_, t) => (t < 4 ? 7 : Math.floor(next() * vocab)));
    const table = randomUniform(vocab * dim, 1);
    const chunks = [
      [0, 10],
      [10, 9],
      [19, 4],
    ];
    const bids = uploadBuffer(device, ids);
    const bx = createStorageBuffer(device, tokens * dim * 4);
    const tables = chunks.map(([first, rows]) =>
      uploadBuffer(device, table.subarray(first * dim, (first + rows) * dim)),
    );
    const x = await runAndRead(
      device,
      chunks.map(([first, rows], c) => k.forwardOp({ ids: bids, chunk: tables[c], x: bx, tokens, dim, first, rows })),
      bx,
    );
    expect(maxRelativeError(x, embeddingCpu(ids, table, dim))).toBe(0);

    const dx = randomUniform(tokens * dim, 2);
    const bindex = uploadBuffer(device, buildTokenIndex(ids));
    const bdx = uploadBuffer(device, dx);
    const grads = chunks.map(([, rows]) => uploadBuffer(device, new Float32Array(rows * dim).fill(0.25)));
    await runAndRead(
      device,
      chunks.map(([first, rows], c) =>
        k.backwardOp({ index: bindex, dx: bdx, dChunk: grads[c], tokens, dim, first, rows }),
      ),
      grads[0],
    );
    const expected = embeddingBackwardCpu(ids, dx, vocab, dim).map((v) => v + 0.25);
    const got = new Float32Array(vocab * dim);
    for (const [c, [first]] of chunks.entries()) got.set(await readFloat32(device, grads[c]), first * dim);
    expect(maxRelativeError(got, expected)).toBeLessThan(1e-6);

    // Gemma's scaled embeddings: x = s · E[ids], dE += s · Σ dx.
    const scale = 25.25;
    const scaled = await runAndRead(
      device,
      chunks.map(([first, rows], c) =>
        k.forwardOp({ ids: bids, chunk: tables[c], x: bx, tokens, dim, first, rows, scale }),
      ),
      bx,
    );
    expect(
      maxRelativeError(
        scaled,
        embeddingCpu(ids, table, dim).map((v) => v * scale),
      ),
    ).toBeLessThan(1e-7);
    const zeros = chunks.map(([, rows]) => uploadBuffer(device, new Float32Array(rows * dim)));
    await runAndRead(
      device,
      chunks.map(([first, rows], c) =>
        k.backwardOp({ index: bindex, dx: bdx, dChunk: zeros[c], tokens, dim, first, rows, scale }),
      ),
      zeros[0],
    );
    for (const [c, [first]] of chunks.entries()) got.set(await readFloat32(device, zeros[c]), first * dim);
    expect(
      maxRelativeError(
        got,
        embeddingBackwardCpu(ids, dx, vocab, dim).map((v) => v * scale),
      ),
    ).toBeLessThan(1e-6);
  });
});

describe('embedding from an 8-bit table (beside a quantized base)', () => {
  it('gathers the dequantized rows of q8 chunks, scaled', async () => {
    const { device } = gpu();
    const k = new EmbeddingKernels(device);
    const [dim, tokens] = [12, 9];
    const chunks = [
      [0, 7],
      [7, 6],
    ];
    const table = randomUniform(13 * dim, 3, -0.3, 0.3);
    const ids = Uint32Array.from([12, 0, 6, 7, 3, 12, 9, 1, 6]);
    const bids = uploadBuffer(device, ids);
    const bx = createStorageBuffer(device, tokens * dim * 4);
    const dequantized = new Float32Array(table.length);
    const ops = chunks.map(([first, rows]) => {
      const words = quantize(table.subarray(first * dim, (first + rows) * dim), rows, dim, 'q8');
      dequantized.set(dequantize(words, rows, dim, 'q8'), first * dim);
      const chunk = uploadBuffer(device, words);
      return k.forwardOp({ ids: bids, chunk, x: bx, tokens, dim, first, rows, scale: 2, format: 'q8' });
    });
    const x = await runAndRead(device, ops, bx);
    expect(
      maxRelativeError(
        x,
        embeddingCpu(ids, dequantized, dim).map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-7);
  });
});
