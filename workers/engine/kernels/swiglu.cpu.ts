/** CPU twins of the SwiGLU kernels (float64). */
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function swigluCpu(g: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: g.length }, (_, i) => g[i] * sigmoid(g[i]) * u[i]);
}

export function swigluBackwardCpu(g: ArrayLike<number>, u: ArrayLike<number>, da: ArrayLike<number>) {
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = sigmoid(g[i]);
    dg[i] = da[i] * u[i] * s * (1 + g[i] * (1 - s));
    du[i] = da[i] * g[i] * s;
  }
  return { dg, du };
}
