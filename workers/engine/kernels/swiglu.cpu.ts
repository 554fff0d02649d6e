/** CPU twins of the gated MLP kernels (float64): SwiGLU (llama, qwen) and GeGLU with the tanh GELU (Gemma). */
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

/** √(2/π) and the cubic term's coefficient of the tanh approximation of GELU (gelu_pytorch_tanh). */
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/** gelu(x) = x/2 · (1 + tanh(c (x + a x³))) */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)));
}

/** gelu'(x) = (1 + t)/2 + x/2 · (1 − t²) · c (1 + 3a x²),  t = tanh(c (x + a x³)) */
function geluTanhDerivative(x: number): number {
  const t = Math.tanh(GELU_C * (x + GELU_A * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_A * x * x);
}

/** act = gelu(g) · u */
export function gegluCpu(g: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: g.length }, (_, i) => geluTanh(g[i]) * u[i]);
}

/** dg = da · u · gelu'(g);  du = da · gelu(g) */
export function gegluBackwardCpu(g: ArrayLike<number>, u: ArrayLike<number>, da: ArrayLike<number>) {
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    dg[i] = da[i] * u[i] * geluTanhDerivative(g[i]);
    du[i] = da[i] * geluTanh(g[i]);
  }
  return { dg, du };
}
