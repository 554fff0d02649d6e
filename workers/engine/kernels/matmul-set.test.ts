import { describe, expect, it } from 'vitest';
import { packHalves, roundToHalf } from '../../../core/float16';
import { randomUniform } from '../../../core/random';
import { maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, uploadBuffer } from '../gpu/buffers';
import { dropoutMaskCpu } from './dropout.cpu';
import type { MatmulVariant } from './matmul';
import { type LowRankCpu, matmulCpu } from './matmul.cpu';
import { MatmulSetKernel } from './matmul-set';
import { SplitKReduce } from './split-k';

const gpu = setupTestGpu();

const TILES = [
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8 },
  { tiled: true, tileM: 4, tileN: 4, workgroupX: 8, workgroupY: 8, kSlices: 2 },
] as const;

/** L [M, rank] and R (x·Wᵀ's layout: [N, rank]) at offsets, one pair for every product's term, as LoRA's are. */
function lowRankOperands(M: number, ns: number[], rank: number) {
  const offsetsR = ns.map((_, i) => 3 + ns.slice(0, i).reduce((sum, n) => sum + n * rank, 0));
  const r = randomUniform(3 + ns.reduce((sum, n) => sum + n * rank, 0), 41);
  const l = randomUniform(2 + ns.length * M * rank, 42);
  const term = (i: number) => ({ rank, offsetL: 2 + i * M * rank, offsetR: offsetsR[i], scale: 1.5 + i });
  return { l, r, term };
}

describe('matmul set against the CPU twin, product by product', () => {
  for (const tile of TILES) {
    for (const half of [false, true]) {
      const name = `${'kSlices' in tile ? 'K in 2 slices, ' : ''}${half ? 'fp16 B' : 'fp32 B'}`;
      it(`each product into its own C: x·Wᵀ of three widths, low-rank terms on two (${name})`, async () => {
        const { device } = gpu();
        const M = 29;
        const K = 53;
        const widths = [70, 13, 37];
        const variant: MatmulVariant = { ...tile, transA: false, transB: true, halfB: half };
        const x = randomUniform(5 + M * K, 1);
        const ws = widths.map((n, i) => randomUniform(n * K, 10 + i));
        const cs = widths.map((n, i) => randomUniform(M * n, 20 + i));
        const { l, r, term } = lowRankOperands(M, widths, 4);
        const terms = [term(0), undefined, term(2)];
        const [bx, bl, br] = [x, l, r].map((data) => uploadBuffer(device, data));
        const bw = ws.map((w) => uploadBuffer(device, half ? packHalves(w) : w));
        const bc = cs.map((c) => uploadBuffer(device, c));
        const shapes = widths.map((N, i) => ({ M, N, K, offsetA: 5, beta: i === 1 ? 1 : 0 }));
        const kernel = new MatmulSetKernel(device, variant);
        const op = kernel.op(
          widths.map((_, i) => ({
            a: bx,
            b: bw[i],
            c: bc[i],
            shape: shapes[i],
            lowRank: terms[i] && { ...terms[i], l: bl, r: br },
          })),
        );
        for (const [i, N] of widths.entries()) {
          const expected = Float64Array.from(cs[i]);
          const cpuTerm: LowRankCpu | undefined = terms[i] && { ...terms[i], l, r };
          matmulCpu(x, half ? roundToHalf(ws[i]) : ws[i], expected, shapes[i], variant, cpuTerm);
          const got = await runAndRead(device, i === 0 ? [op] : [], bc[i], M * N * 4);
          expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
        }
      });
    }

    for (const splits of [1, 3]) {
      it(`a sum of products, K of each in ${splits} slice(s), masked low-rank terms, into C with alpha and beta (${'kSlices' in tile ? 'K in 2 slices' : 'plain'})`, async () => {
        const { device } = gpu();
        const M = 29;
        const N = 37;
        const ks = [53, 20, 7];
        const variant: MatmulVariant = { ...tile, transA: false, transB: false };
        const dys = ks.map((k, i) => randomUniform(M * k, 30 + i));
        // Each W [K, N] with rows of ldb = N + 2, at an offset.
        const ws = ks.map((k, i) => randomUniform(4 + k * (N + 2), 40 + i));
        const c = randomUniform(1 + M * (N + 3), 50);
        const rank = 3;
        const l = randomUniform(ks.length * M * rank, 51);
        const r = randomUniform(ks.length * rank * N, 52);
        const maskOf = (module: number) => dropoutMaskCpu(M * N, 77, module, 0.2);
        const shape = { M, N, ldc: N + 3, offsetC: 1, alpha: 0.5, beta: 1 };
        const expected = Float64Array.from(c);
        // The CPU sums product by product: the first with the given beta, the rest accumulating.
        const sum = new Float64Array(M * N);
        for (const [i, K] of ks.entries()) {
          const term = { l, r, rank, offsetL: i * M * rank, offsetR: i * rank * N, scale: 1, mask: maskOf(i + 1) };
          matmulCpu(dys[i], ws[i], sum, { M, N, K, ldb: N + 2, offsetB: 4, beta: 1 }, variant, term);
        }
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            const at = 1 + m * (N + 3) + n;
            expected[at] = 0.5 * sum[m * N + n] + expected[at];
          }
        }
        const [bc, bl, br, state] = [c, l, r, Uint32Array.of(77, 1)].map((data) => uploadBuffer(device, data));
        const products = ks.map((K, i) => ({
          a: uploadBuffer(device, dys[i]),
          b: uploadBuffer(device, ws[i]),
          shape: { M, N, K, ldb: N + 2, offsetB: 4 },
          lowRank: {
            l: bl,
            r: br,
            rank,
            offsetL: i * M * rank,
            offsetR: i * rank * N,
            scale: 1,
            mask: { state, module: i + 1, p: 0.2 },
          },
        }));
        const kernel = new MatmulSetKernel(device, variant);
        const scratch = createStorageBuffer(device, MatmulSetKernel.sumScratchBytes(products, splits));
        const reduce = new SplitKReduce(device, variant);
        const ops = kernel.sumOps(products, { c: bc, shape, splits, scratch, reduce });
        expect(maxRelativeError(await runAndRead(device, ops, bc), expected)).toBeLessThan(1e-5);
      });
    }
  }

  it('refuses sets it cannot run', () => {
    const { device } = gpu();
    const kernel = new MatmulSetKernel(device, { ...TILES[0], transA: false, transB: true });
    const buffer = () => createStorageBuffer(device, 64);
    const many = Array.from({ length: device.limits.maxStorageBuffersPerShaderStage }, () => ({
      a: buffer(),
      b: buffer(),
      c: buffer(),
      shape: { M: 2, N: 2, K: 2 },
    }));
    expect(kernel.fits(many)).toBe(false);
    expect(() => kernel.op(many)).toThrow(/storage buffers/);
    expect(() => kernel.op([{ ...many[0], shape: { M: 2, N: 2, K: 2, batch: 2 } }])).toThrow(/batches/);
  });
});
