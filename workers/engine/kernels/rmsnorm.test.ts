import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { dropoutMaskCpu } from './dropout.cpu';
import { RmsNormKernels } from './rmsnorm';
import { rmsnormBackwardCpu, rmsnormForwardCpu } from './rmsnorm.cpu';

const gpu = setupTestGpu();

describe('RMSNorm CPU twin', () => {
  it('has the gradient of sum(y * c) by finite differences', () => {
    const [rows, dim] = [3, 7];
    const x = Float64Array.from(randomUniform(rows * dim, 1));
    const w = Float64Array.from(randomUniform(dim, 2, 0.5, 1.5));
    const c = randomUniform(rows * dim, 3);
    const loss = () => rmsnormForwardCpu(x, w, rows, dim, 1e-5).y.reduce((s, y, i) => s + y * c[i], 0);
    const { rstd } = rmsnormForwardCpu(x, w, rows, dim, 1e-5);
    const { dx, dw } = rmsnormBackwardCpu(x, w, rstd, c, rows, dim);
    for (let i = 0; i < x.length; i++) expect(dx[i]).toBeCloseTo(finiteDifference(loss, x, i), 7);
    for (let j = 0; j < dim; j++) expect(dw[j]).toBeCloseTo(finiteDifference(loss, w, j), 7);
  });
});

describe('RMSNorm kernels against the CPU twin', () => {
  for (const layout of ['cooperative', 'row'] as const) {
    for (const [rows, dim] of [
      [5, 37],
      [3, 131],
      [70, 6],
    ]) {
      it(`forward and backward, ${rows} rows of ${dim}, ${layout}`, async () => {
        const { device } = gpu();
        const k = new RmsNormKernels(device, layout);
        const x = randomUniform(rows * dim, rows, -2, 2);
        const w = randomUniform(dim, dim, 0.5, 1.5);
        const dy = randomUniform(rows * dim, 7);
        const prior = randomUniform(rows * dim, 8);
        const ref = rmsnormForwardCpu(x, w, rows, dim, 1e-6);
        const back = rmsnormBackwardCpu(x, w, ref.rstd, dy, rows, dim);

        const [bx, bw, bdy] = [uploadBuffer(device, x), uploadBuffer(device, w), uploadBuffer(device, dy)];
        const by = createStorageBuffer(device, rows * dim * 4);
        const brstd = createStorageBuffer(device, rows * 4);
        const bdx = uploadBuffer(device, prior);
        const bdw = uploadBuffer(device, new Float32Array(dim).fill(0.5));
        const y = await runAndRead(
          device,
          [k.forwardOp({ x: bx, w: bw, y: by, rstd: brstd, rows, dim, eps: 1e-6 })],
          by,
        );
        expect(maxRelativeError(y, ref.y)).toBeLessThan(1e-5);
        expect(maxRelativeError(await readFloat32(device, brstd), ref.rstd)).toBeLessThan(1e-5);
        // Carrying x along: the same y, and x's exact copy.
        const carry = createStorageBuffer(device, rows * dim * 4);
        device.queue.writeBuffer(by, 0, new Float32Array(rows * dim));
        const yCarried = await runAndRead(
          device,
          [k.forwardOp({ x: bx, w: bw, y: by, rstd: brstd, rows, dim, eps: 1e-6, carry })],
          by,
        );
        expect(maxRelativeError(yCarried, ref.y)).toBeLessThan(1e-5);
        expect(await readFloat32(device, carry)).toEqual(x);
        // Added onto y (Gemma's output norms onto the residual stream): y = prior + w · x̂.
        device.queue.writeBuffer(by, 0, prior);
        const yAdded = await runAndRead(
          device,
          [k.forwardOp({ x: bx, w: bw, y: by, rstd: brstd, rows, dim, eps: 1e-6, accumulate: true })],
          by,
        );
        expect(
          maxRelativeError(
            yAdded,
            ref.y.map((v, i) => v + prior[i]),
          ),
        ).toBeLessThan(1e-5);
        // x plus three partial sums (a product left in split-K's slices), added as x is read and written back into
        // it: the norm of their sum, carried along or not.
        const parts = [11, 12, 13].map((seed) => randomUniform(rows * dim, seed));
        const xParts = new Float32Array(3 * rows * dim);
        for (const [i, part] of parts.entries()) xParts.set(part, i * rows * dim);
        const total = x.map((v, i) => v + parts[0][i] + parts[1][i] + parts[2][i]);
        const summed = rmsnormForwardCpu(total, w, rows, dim, 1e-6);
        const xSlabs = { sum: uploadBuffer(device, xParts), slabs: 3 };
        for (const carried of [carry, undefined]) {
          const [bxSum, brstdSum] = [uploadBuffer(device, x), createStorageBuffer(device, rows * 4)];
          const ops = [
            k.forwardOp({ x: bxSum, w: bw, y: by, rstd: brstdSum, rows, dim, eps: 1e-6, carry: carried, xSlabs }),
          ];
          expect(maxRelativeError(await runAndRead(device, ops, by), summed.y)).toBeLessThan(1e-5);
          expect(maxRelativeError(await readFloat32(device, brstdSum), summed.rstd)).toBeLessThan(1e-5);
          expect(maxRelativeError(await readFloat32(device, bxSum), total)).toBeLessThan(1e-6);
          if (carried) expect(maxRelativeError(await readFloat32(device, carried), total)).toBeLessThan(1e-6);
        }

        // LoRA's x Aᵀ of three modules reading y (rank 20: two blocks of columns, the second part-filled), each
        // through its own dropout mask, into its slot; then of one module without dropout.
        const rank = 20;
        const A = randomUniform(3 * rank * dim + 4, 40);
        const state = uploadBuffer(device, Uint32Array.of(77, 1));
        const modules = [0, 1, 2].map((i) => ({
          offsetA: 4 + i * rank * dim,
          offsetOut: 3 + i * rows * rank,
          moduleId: 5 + i,
        }));
        for (const [count, p] of [
          [3, 0.3],
          [1, 0],
        ]) {
          const xa = createStorageBuffer(device, (3 + 3 * rows * rank) * 4);
          const lowRankIn = {
            a: uploadBuffer(device, A),
            rank,
            xa,
            modules: modules.slice(0, count),
            mask: p > 0 ? { state, p } : undefined,
          };
          const ops = [
            k.forwardOp({
              x: bx,
              w: bw,
              y: by,
              rstd: createStorageBuffer(device, rows * 4),
              rows,
              dim,
              eps: 1e-6,
              carry,
              lowRankIn,
            }),
          ];
          expect(maxRelativeError(await runAndRead(device, ops, by), ref.y)).toBeLessThan(1e-5);
          const got = await readFloat32(device, xa);
          for (const m of modules.slice(0, count)) {
            const mask = p > 0 ? dropoutMaskCpu(rows * dim, 77, m.moduleId, p) : new Float64Array(rows * dim).fill(1);
            const expected = Array.from({ length: rows * rank }, (_, i) => {
              const [n, t] = [Math.floor(i / rank), i % rank];
              let sum = 0;
              for (let j = 0; j < dim; j++) sum += ref.y[n * dim + j] * mask[n * dim + j] * A[m.offsetA + t * dim + j];
              return sum;
            });
            const slot = got.slice(m.offsetOut, m.offsetOut + rows * rank);
            expect(maxRelativeError(slot, expected), `module ${m.moduleId}, p ${p}`).toBeLessThan(1e-5);
          }
        }

        const dx = await runAndRead(
          device,
          [
            k.backwardOp({ x: bx, w: bw, rstd: brstd, dy: bdy, dx: bdx, rows, dim, accumulate: true }),
            k.weightGradOp({ x: bx, rstd: brstd, dy: bdy, dw: bdw, rows, dim }),
          ],
          bdx,
        );
        // Accumulating backward: adds to what dx held.
        expect(
          maxRelativeError(
            dx,
            back.dx.map((v, i) => v + prior[i]),
          ),
        ).toBeLessThan(1e-5);
        expect(
          maxRelativeError(
            await readFloat32(device, bdw),
            back.dw.map((v) => v + 0.5),
          ),
        ).toBeLessThan(1e-5);

        const overwritten = await runAndRead(
          device,
          [k.backwardOp({ x: bx, w: bw, rstd: brstd, dy: bdy, dx: bdx, rows, dim })],
          bdx,
        );
        expect(maxRelativeError(overwritten, back.dx)).toBeLessThan(1e-5);

        // With a low-rank output: the accumulated dx just written, times B [dim, rank] (at an offset), scaled, into
        // its rows of out (at an offset); ranks of one block of columns and of two, the second part-filled.
        const accumulated = back.dx.map((v, i) => v + prior[i]);
        for (const rank of [3, 20]) {
          const B = randomUniform(dim * rank, 30 + rank);
          const [offsetB, offsetOut, scale] = [5, 7, 0.7];
          const bB = uploadBuffer(device, Float32Array.from([...new Float32Array(offsetB), ...B]));
          const out = createStorageBuffer(device, (offsetOut + rows * rank) * 4);
          device.queue.writeBuffer(bdx, 0, prior);
          const lowRankOut = { b: bB, offsetB, rank, scale, out, offsetOut };
          const ops = [
            k.backwardOp({ x: bx, w: bw, rstd: brstd, dy: bdy, dx: bdx, rows, dim, accumulate: true, lowRankOut }),
          ];
          expect(maxRelativeError(await runAndRead(device, ops, bdx), accumulated)).toBeLessThan(1e-5);
          const expected = Array.from({ length: rows * rank }, (_, i) => {
            const [n, t] = [Math.floor(i / rank), i % rank];
            let sum = 0;
            for (let j = 0; j < dim; j++) sum += accumulated[n * dim + j] * B[j * rank + t];
            return scale * sum;
          });
          const got = (await readFloat32(device, out)).slice(offsetOut);
          expect(maxRelativeError(got, expected), `rank ${rank}`).toBeLessThan(1e-5);
        }

        // dy as three partial sums, added as they are read: the gradient of their sum, dy.
        const [first, second] = [randomUniform(rows * dim, 9), randomUniform(rows * dim, 10)];
        const slabs = new Float32Array(3 * rows * dim);
        slabs.set(first);
        slabs.set(second, rows * dim);
        slabs.set(
          dy.map((v, i) => v - first[i] - second[i]),
          2 * rows * dim,
        );
        const fromSlabs = await runAndRead(
          device,
          [
            k.backwardOp({
              x: bx,
              w: bw,
              rstd: brstd,
              dy: uploadBuffer(device, slabs),
              dySlabs: 3,
              dx: bdx,
              rows,
              dim,
            }),
          ],
          bdx,
        );
        expect(maxRelativeError(fromSlabs, back.dx)).toBeLessThan(1e-4);
      });
    }
  }
});
