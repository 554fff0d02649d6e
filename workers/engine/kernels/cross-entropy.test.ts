import { describe, expect, it } from 'vitest';
import { randomUniform } from '../../../core/random';
import { finiteDifference, maxRelativeError, runAndRead, setupTestGpu } from '../../../tests/helpers/gpu';
import { createStorageBuffer, readFloat32, uploadBuffer } from '../gpu/buffers';
import { CrossEntropyKernels } from './cross-entropy';
import { crossEntropyCpu } from './cross-entropy.cpu';

const gpu = setupTestGpu();

describe('cross-entropy CPU twin', () => {
  it('gives the gradient of the weighted mean loss', () => {
    const [tokens, vocab] = [3, 5];
    const logits = Float64Array.from(randomUniform(tokens * vocab, 1, -3, 3));
    const targets = [4, -100, 0];
    const weights = [0.5, 0, 0.5];
    const loss = () => crossEntropyCpu(logits, targets, weights, vocab).loss.reduce((a, b) => a + b, 0);
    const { dLogits } = crossEntropyCpu(logits, targets, weights, vocab);
    for (let i = 0; i < logits.length; i++) expect(dLogits[i]).toBeCloseTo(finiteDifference(loss, logits, i), 7);
    expect(dLogits.subarray(vocab, 2 * vocab).every((v) => v === 0)).toBe(true);
  });
});

describe('chunked cross-entropy kernels against the whole-vocabulary CPU twin', () => {
  it('merges chunks online for the loss and gives d(loss)/d(logits) per chunk', async () => {
    const { device } = gpu();
    const k = new CrossEntropyKernels(device);
    const [tokens, vocab] = [6, 157];
    // Wide range so the running max changes between chunks.
    const logits = randomUniform(tokens * vocab, 2, -20, 20);
    const targets = Int32Array.from([3, 156, -100, 80, 100, 0]);
    const weights = Float32Array.from(targets, (t) => (t >= 0 ? 1 / 5 : 0));
    const ref = crossEntropyCpu(logits, targets, weights, vocab);
    const chunks = [
      [0, 64],
      [64, 64],
      [128, 29],
    ];
    const chunkLogits = chunks.map(([first, rows]) => {
      const c = new Float32Array(tokens * rows);
      for (let t = 0; t < tokens; t++) c.set(logits.subarray(t * vocab + first, t * vocab + first + rows), t * rows);
      return uploadBuffer(device, c);
    });
    const [bt, bw] = [uploadBuffer(device, targets), uploadBuffer(device, weights)];
    const stats = createStorageBuffer(device, tokens * 12);
    const [lse, loss] = [createStorageBuffer(device, tokens * 4), createStorageBuffer(device, tokens * 4)];
    const ops = [
      ...chunks.map(([first, rows], c) =>
        k.statsOp({ logits: chunkLogits[c], targets: bt, stats, tokens, first, rows }),
      ),
      k.finishOp({ stats, weights: bw, lse, loss, tokens }),
      ...chunks.map(([first, rows], c) =>
        k.backwardOp({ targets: bt, weights: bw, lse, logits: chunkLogits[c], tokens, first, rows }),
      ),
    ];
    const gotLoss = await runAndRead(device, ops, loss);
    expect(maxRelativeError(gotLoss, ref.loss)).toBeLessThan(1e-5);
    expect(maxRelativeError(await readFloat32(device, lse), ref.lse)).toBeLessThan(1e-6);
    for (const [c, [first, rows]] of chunks.entries()) {
      const got = await readFloat32(device, chunkLogits[c]);
      const expected = new Float64Array(tokens * rows);
      for (let t = 0; t < tokens; t++) {
        expected.set(ref.dLogits.subarray(t * vocab + first, t * vocab + first + rows), t * rows);
      }
      expect(maxRelativeError(got, expected)).toBeLessThan(1e-5);
    }
  });
});
