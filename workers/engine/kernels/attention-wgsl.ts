import { uniformStruct } from './wgsl';

/** The WGSL pieces both attention layouts (attention.ts, attention-tiles.ts) and decoding's attention share. */

/** Invocations per workgroup. */
export const WG = 64;
export const PARAMS = uniformStruct({
  batch: 'u32',
  seq: 'u32',
  heads: 'u32',
  kvHeads: 'u32',
  scale: 'f32',
  window: 'u32',
});

/** The vector type rows are read as, its width, and a dot product of two of them. */
export function vectorOf(headDim: number) {
  return headDim % 4 === 0
    ? { width: 4, type: 'vec4f', dot: 'fn vdot(a: vec4f, b: vec4f) -> f32 { return dot(a, b); }' }
    : { width: 1, type: 'f32', dot: 'fn vdot(a: f32, b: f32) -> f32 { return a * b; }' };
}

/**
 * The kernels are written out in full, with no loops over a row's vectors or a block's rows: every private value
 * then has a constant name, which compilers keep in registers, where arrays indexed in loops go through memory
 * (on software adapters, as one access per invocation). `Unrolled` writes those statements.
 */
export class Unrolled {
  /** The row's vectors, 0..HDV-1, and the block's rows, 0..block-1. */
  readonly xs: number[];
  readonly rs: number[];

  constructor(
    readonly headDim: number,
    readonly block: number,
    /** Elements per vector: vectorOf(headDim)'s unless given (a kernel pairing half rows needs it to divide those). */
    width = vectorOf(headDim).width,
  ) {
    this.xs = Array.from({ length: headDim / width }, (_, x) => x);
    this.rs = Array.from({ length: block }, (_, r) => r);
  }

  /** One statement per vector of a row. */
  perVector(statement: (x: number) => string): string {
    return this.xs.map(statement).join('\n');
  }

  /** One statement per row of the block. */
  perRow(statement: (r: number) => string): string {
    return this.rs.map(statement).join('\n');
  }

  /** One statement per (row, vector). */
  perRowVector(statement: (r: number, x: number) => string): string {
    return this.rs.map((r) => this.perVector((x) => statement(r, x))).join('\n');
  }

  /** Σ over the row's vectors of vdot(left(x), right(x)). */
  dot(left: (x: number) => string, right: (x: number) => string): string {
    return this.xs.map((x) => `vdot(${left(x)}, ${right(x)})`).join(' + ');
  }
}

/** What all three kernels share: parameters, the row's vector type and the index of each row's first vector. */
export function common(u: Unrolled): string {
  const v = vectorOf(u.headDim);
  return /* wgsl */ `
${PARAMS.wgsl}
alias V = ${v.type};
const HDV = ${u.xs.length}u; // vectors per head row
${v.dot}
// First vector of head h's row at position t of batch row b, in a rows-layout tensor of \`heads\` heads.
fn rowAt(b: u32, t: u32, heads: u32, h: u32) -> u32 { return ((b * p.seq + t) * heads + h) * HDV; }
// Whether query i sees key j: causal, and within the window (the sequence's length when there is none).
fn sees(i: u32, j: u32) -> bool { return j <= i && i - j < p.window; }
// The first key query i sees.
fn firstKey(i: u32) -> u32 { return select(0u, i + 1u - p.window, i + 1u > p.window); }
`;
}

/**
 * A pass's bindings, the same in both layouts, numbered in the order the ops bind their buffers: q, k and v, the
 * other buffers it reads, those it writes, then the uniforms.
 */
function bindings(reads: string[], writes: string[]): string {
  const storage = [
    ...['q: array<V>', 'k: array<V>', 'v: array<V>', ...reads].map((b) => `var<storage, read> ${b}`),
    ...writes.map((b) => `var<storage, read_write> ${b}`),
  ];
  return [...storage, 'var<uniform> p: Params'].map((decl, i) => `@group(0) @binding(${i}) ${decl};`).join('\n');
}
export const FORWARD_BINDINGS = bindings([], ['out: array<V>', 'lse: array<f32>']);
export const QUERY_GRAD_BINDINGS = bindings(
  ['out: array<V>', 'dout: array<V>', 'lse: array<f32>'],
  ['dq: array<V>', 'delta: array<f32>'],
);
export const KEY_VALUE_GRAD_BINDINGS = bindings(
  ['dout: array<V>', 'lse: array<f32>', 'delta: array<f32>'],
  ['dk: array<V>', 'dv: array<V>'],
);
