import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { uploadBuffer } from '../gpu/buffers';
import { CausalSoftmaxKernels } from './softmax';
import { causalSoftmaxBackwardCpu, causalSoftmaxCpu } from './softmax.cpu';

const gpu = setupTestGpu();

describe('causal softmax CPU twin', () => {
  it('masks future keys and has the right gradient', () => {
    const [rows, seq] = [6, 3];
    const s = Float64Array.from(randomUniform(rows * seq, 1, -3, 3));
    const p = causalSoftmaxCpu(s, rows, seq);
    expect(p[0]).toBe(1);
    expect(p[1]).toBe(0);
    expect(p[seq + 2]).toBe(0);
    const c = randomUniform(rows * seq, 2);
    const loss = () => causalSoftmaxCpu(s, rows, seq).reduce((acc, v, i) => acc + v * c[i], 0);
    const ds = causalSoftmaxBackwardCpu(p, c, rows, seq);
    for (let i = 0; i < s.length; i++) expect(ds[i]).toBeCloseTo(finiteDifference(loss, s, i), 7);
  });
});

describe('causal softmax kernels against the CPU twin', () => {
  for (const [heads, seq, layout] of [
    [3, 7, 'cooperative'],
    [2, 67, 'cooperative'],
    [1, 1, 'cooperative'],
    // An invocation per row: 3 * 37 rows leave part of the second workgroup idle.
    [3, 37, 'row'],
    [2, 67, 'row'],
    [1, 1, 'row'],
  ] as const) {
    it(`${heads} heads, seq ${seq}, ${layout}`, async () => {
      const { device } = gpu();
      const k = new CausalSoftmaxKernels(device, layout);
      const rows = heads * seq;
      const s = randomUniform(rows * seq, seq, -8, 8);
      const dp = randomUniform(rows * seq, seq + 1);
      const p = causalSoftmaxCpu(s, rows, seq);
      const bs = uploadBuffer(device, s);
      const probs = await runAndRead(device, [k.forwardOp(bs, rows, seq)], bs);
      expect(maxRelativeError(probs, p)).toBeLessThan(1e-5);
      const bdp = uploadBuffer(device, dp);
      const ds = await runAndRead(device, [k.backwardOp(bs, bdp, rows, seq)], bdp);
      expect(maxRelativeError(ds, causalSoftmaxBackwardCpu(probs, dp, rows, seq))).toBeLessThan(1e-5);
    });
  }
});
