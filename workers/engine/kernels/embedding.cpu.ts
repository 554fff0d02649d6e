/** CPU twins of the embedding kernels (float64), on the whole table. */

export function embeddingCpu(ids: ArrayLike<number>, table: ArrayLike<number>, dim: number): Float64Array {
  const x = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) x[t * dim + j] = table[ids[t] * dim + j];
  return x;
}

export function embeddingBackwardCpu(ids: ArrayLike<number>, dx: ArrayLike<number>, vocab: number, dim: number) {
  const dTable = new Float64Array(vocab * dim);
  for (let t = 0; t < ids.length; t++) for (let j = 0; j < dim; j++) dTable[ids[t] * dim + j] += dx[t * dim + j];
  return dTable;
}
