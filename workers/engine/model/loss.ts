import type { Op } from '../gpu/ops';
import type { MatmulShape } from '../kernels/matmul';
import type { StepContext } from './layer';
import type { VocabChunk } from './weights';

/**
 * The LM head and cross-entropy, one vocabulary slice at a time so [N, V] never exists:
 *   logits [N, rows] = xf · E_sliceᵀ                                   per slice
 *   loss[t] = (log Σ_v exp(logits[t, v]) - logits[t, target]) · weight[t]
 *   dlogits = (softmax - onehot(target)) · weight;  dxf = Σ_slices dlogits · E_slice;  dE_slice += dlogitsᵀ · xf
 */

/** The logits of vocabulary rows [first, first + rows), read from `chunk` at row offset `first - chunk.first`. */
export interface LogitsSlice {
  chunkIndex: number;
  chunk: VocabChunk;
  first: number;
  rows: number;
}

/** Splits the LM head's chunks into slices of at most `maxRows` vocabulary rows. */
export function sliceVocabulary(chunks: VocabChunk[], maxRows: number): LogitsSlice[] {
  const slices: LogitsSlice[] = [];
  chunks.forEach((chunk, chunkIndex) => {
    for (let first = chunk.first; first < chunk.first + chunk.rows; first += maxRows) {
      slices.push({ chunkIndex, chunk, first, rows: Math.min(maxRows, chunk.first + chunk.rows - first) });
    }
  });
  return slices;
}

/** Each token's weighted loss into lossRows, the logits merged online into per-token statistics slice by slice. */
export function lossForward(c: StepContext, ops: Op[], slices: readonly LogitsSlice[]): void {
  const { s, inputs } = c.buffers;
  const tokens = c.linear.rows;
  for (const slice of slices) {
    ops.push(...logitsOps(c, slice));
    const chunk = { tokens, first: slice.first, rows: slice.rows };
    ops.push(c.k.crossEntropy.statsOp({ logits: s.logits, targets: inputs.targets, stats: s.ceStats, ...chunk }));
  }
  const weights = inputs.weightsPerToken;
  ops.push(c.k.crossEntropy.finishOp({ stats: s.ceStats, weights, lse: s.lse, loss: inputs.lossRows, tokens }));
}

/** dxf [N, d] from the loss; full mode's dE too. One slice's logits are still there from the forward. */
export function lossBackward(c: StepContext, ops: Op[], slices: readonly LogitsSlice[]): void {
  const { s, inputs } = c.buffers;
  const N = c.linear.rows;
  const d = c.w.config.hiddenSize;
  const table = c.w.tableFormat;
  const lmKey = c.w.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  for (const [i, slice] of slices.entries()) {
    const offset = (slice.first - slice.chunk.first) * d;
    if (slices.length > 1) ops.push(...logitsOps(c, slice));
    const { targets, weightsPerToken: weights } = inputs;
    const chunk = { tokens: N, first: slice.first, rows: slice.rows };
    ops.push(c.k.crossEntropy.backwardOp({ targets, weights, lse: s.lse, logits: s.logits, ...chunk }));
    const dxf: MatmulShape = { M: N, N: d, K: slice.rows, offsetB: offset, beta: i === 0 ? 0 : 1 };
    ops.push(...c.k.matmuls.productFor(false, false, dxf, table).ops(s.logits, slice.chunk.buffer, s.dxf, dxf));
    if (c.grad) {
      const dE: MatmulShape = { M: slice.rows, N: d, K: N, offsetC: offset, beta: 1 };
      ops.push(...c.k.matmuls.productFor(true, false, dE).ops(s.logits, s.xf, c.grad(lmKey, slice.chunkIndex), dE));
    }
  }
}

function logitsOps(c: StepContext, slice: LogitsSlice): Op[] {
  const d = c.w.config.hiddenSize;
  const { xf, logits } = c.buffers.s;
  const shape = { M: c.linear.rows, N: slice.rows, K: d, offsetB: (slice.first - slice.chunk.first) * d };
  return c.k.matmuls.productFor(false, true, shape, c.w.tableFormat).ops(xf, slice.chunk.buffer, logits, shape);
}
