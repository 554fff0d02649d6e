import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { ScoreHeadKernels } from './score-head';
import { scoreHeadBackwardCpu, scoreHeadCpu } from './score-head.cpu';

const gpu = setupTestGpu();

describe('score head', () => {
  it('CPU twin gradients match finite differences', () => {
    const [n, d] = [5, 3];
    const rows = [4, 1, 4];
    const x = Float64Array.from(randomUniform(n * d, 1));
    const w = Float64Array.from(randomUniform(d, 2));
    const g = randomUniform(rows.length, 3);
    const loss = () => scoreHeadCpu(x, w, rows).reduce((s, v, b) => s + v * g[b], 0);
    const { dx, dw } = scoreHeadBackwardCpu(x, w, rows, g);
    for (let i = 0; i < n * d; i++) expect(dx[i]).toBeCloseTo(finiteDifference(loss, x, i), 7);
    for (let j = 0; j < d; j++) expect(dw[j]).toBeCloseTo(finiteDifference(loss, w, j), 7);
  });

  it('kernels match the CPU twin, with a row scored twice and d not a multiple of the workgroup', async () => {
    const { device } = gpu();
    const k = new ScoreHeadKernels(device);
    const [n, d] = [11, 133];
    const rows = Uint32Array.of(10, 3, 0, 3, 7);
    const B = rows.length;
    const x = randomUniform(n * d, 4);
    const w = randomUniform(d, 5);
    const g = randomUniform(B, 6);
    const [bx, bw, brows, bg] = [x, w, rows, g].map((a) => uploadBuffer(device, a));
    const head = { x: bx, w: bw, rows: brows, batch: B, d };
    const score = createStorageBuffer(device, B * 4);
    const got = await runAndRead(device, [k.forwardOp({ ...head, score })], score);
    expect(maxRelativeError(got, scoreHeadCpu(x, w, rows))).toBeLessThan(1e-5);

    const ref = scoreHeadBackwardCpu(x, w, rows, g);
    // dx overwrites whatever was there; dw adds to what it holds.
    const dx = uploadBuffer(device, randomUniform(n * d, 7));
    const dw0 = randomUniform(d, 8);
    const dw = uploadBuffer(device, dw0);
    const ops = [k.inputGradOp({ ...head, g: bg, dx, n }), k.weightGradOp({ ...head, g: bg, dw })];
    expect(maxRelativeError(await runAndRead(device, ops, dx), ref.dx)).toBeLessThan(1e-5);
    const expectedDw = Float64Array.from(ref.dw, (v, j) => v + dw0[j]);
    expect(maxRelativeError(await readFloat32(device, dw), expectedDw)).toBeLessThan(1e-5);
  });
});
