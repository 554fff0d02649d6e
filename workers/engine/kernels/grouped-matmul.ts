import { grid1d, Kernel } from '../gpu/kernel';
import type { Op } from '../gpu/ops';
import { dropoutThreshold, MASKED_BY_MODULE_WGSL } from './dropout';
import { type MatmulShape, type OperandMask, resolveMatmulShape } from './matmul';
import { uniformStruct } from './wgsl';

/**
 * Small independent products in one dispatch: C[offsetC_i..] = alpha_i · op(A_i)·op(B_i) + beta_i · C for each i, with
 * its own transposes, shape, operand buffers and place in one output, an operand optionally read through a LoRA
 * module's dropout (matmul.ts's `OperandMask`). For LoRA's x Aᵀ, d(x Aᵀ) and weight gradients (dB += s dyᵀ (x Aᵀ),
 * dA += d(x Aᵀ)ᵀ dropout(x)): a few workgroups' work each, which on a GPU cost a dispatch apiece, more than their
 * arithmetic.
 * Each invocation owns a `GroupedBlock` of one product's C and walks K from storage, each product starting on a fresh
 * workgroup; with `kSlices` > 1 (GPUs) that many invocations share a block, each walking every kSlices-th step of K,
 * their sums added in workgroup memory.
 * CPU twin: matmul.cpu.ts's `matmulCpu`, product by product (the operand through `throughMaskCpu`).
 */
const WG = 64;
/** Products per dispatch (the uniforms' table). */
const MAX_PRODUCTS = 8;
/** The dropout masks' threshold and scale, and each product's four vec4u (`Product` in the shader). */
const PARAMS = uniformStruct({
  count: 'u32',
  threshold: 'u32',
  maskScale: 'f32',
  products: { vec4u: 4 * MAX_PRODUCTS },
});

export interface GroupedProduct {
  a: GPUBuffer;
  b: GPUBuffer;
  transA: boolean;
  transB: boolean;
  /** One matrix each (no batch); offsets, leading dimensions, alpha and beta as matmul.ts's. */
  shape: MatmulShape;
  mask?: OperandMask;
}

/** What a group's shader is compiled for, per product: its operands' buffers (by binding), transposes and mask. */
interface ProductForm {
  a: number;
  b: number;
  transA: boolean;
  transB: boolean;
  mask?: 'a' | 'b';
}

/**
 * The group's shader: one function per product with its operands, transposes and mask written in, so the K loop
 * does not choose a buffer per load (a software adapter runs every case of such a choice for each load, masked).
 */
function shader(forms: readonly ProductForm[], sources: number, block: GroupedBlock, slices: number): string {
  const masked = forms.some((f) => f.mask);
  const rows = Array.from({ length: block.rows }, (_, i) => i);
  const cols = Array.from({ length: block.cols }, (_, j) => j);
  const vectors = Array.from({ length: block.cols / 4 }, (_, v) => v);
  const product = (f: ProductForm, i: number) => {
    // op(A)[m, k] and op(B)[k, n] from the operands' offsets: steps along m (or n) and along k.
    const [aStepM, aStepK] = f.transA ? ['1u', 'q.a.z'] : ['q.a.z', '1u'];
    const [bStepN, bStepK] = f.transB ? ['q.b.y', '1u'] : ['1u', 'q.b.y'];
    const load = (operand: 'a' | 'b', index: string) => {
      const [source, offset] = operand === 'a' ? [`s${f.a}`, 'q.a.y'] : [`s${f.b}`, 'q.b.x'];
      return f.mask === operand
        ? `masked(${source}[${offset} + ${index}], ${index}, q.c.w)`
        : `${source}[${offset} + ${index}]`;
    };
    return /* wgsl */ `
fn product${i}(q: Product, row0: u32, col0: u32, slice: u32) -> Block {
  // Rows and columns past C's edge read its last ones (in bounds) and are not stored.
${rows.map((r) => `  let a${r} = min(row0 + ${r}u, q.shape.x - 1u) * ${aStepM};`).join('\n')}
${cols.map((c) => `  let b${c} = min(col0 + ${c}u, q.shape.y - 1u) * ${bStepN};`).join('\n')}
  var acc: Block;
  for (var k = slice; k < q.shape.z; k += ${slices}u) {
    let ka = k * ${aStepK};
    let kb = k * ${bStepK};
${vectors.map((v) => `    let bv${v} = vec4f(${[0, 1, 2, 3].map((c) => load('b', `b${4 * v + c} + kb`)).join(', ')});`).join('\n')}
${rows.map((r) => `    let av${r} = ${load('a', `a${r} + ka`)};\n${vectors.map((v) => `    acc[${r * vectors.length + v}] += av${r} * bv${v};`).join('\n')}`).join('\n')}
  }
  return acc;
}`;
  };
  const words = (block.rows * block.cols) / 4;
  // Slices 1.. hand their sums to slice 0, which adds them and stores.
  const handOver =
    slices > 1
      ? /* wgsl */ `
  let at = (slice - 1u) * BLOCKS + lid % BLOCKS;
  if (slice > 0u) {
    for (var e = 0u; e < ${words}u; e++) { sums[at * ${words}u + e] = acc[e]; }
  }
  workgroupBarrier();
  if (slice > 0u) { return; }
  for (var z = 0u; z < ${slices - 1}u; z++) {
    for (var e = 0u; e < ${words}u; e++) { acc[e] += sums[(z * BLOCKS + lid) * ${words}u + e]; }
  }`
      : '';
  return /* wgsl */ `
// One product: shape (M, N, K, _); A's offset and leading dimension at a.yz; B's offset and leading dimension, C's
// offset and leading dimension at b; alpha and beta (f32 bits), the product's first block, its dropout module at c.
struct Product { shape: vec4u, a: vec4u, b: vec4u, c: vec4u }
// An invocation's block of C, ${block.rows} rows of ${block.cols / 4} vectors; blocks per workgroup.
alias Block = array<vec4f, ${words}>;
const BLOCKS = ${WG / slices}u;
${slices > 1 ? `var<workgroup> sums: array<vec4f, ${(slices - 1) * (WG / slices) * words}>;` : ''}
${PARAMS.wgsl}
fn productAt(i: u32) -> Product {
  return Product(p.products[4u * i], p.products[4u * i + 1u], p.products[4u * i + 2u], p.products[4u * i + 3u]);
}
${Array.from({ length: sources }, (_, i) => `@group(0) @binding(${i}) var<storage, read> s${i}: array<f32>;`).join('\n')}
@group(0) @binding(${sources}) var<storage, read_write> C: array<f32>;
${masked ? `@group(0) @binding(${sources + 1}) var<storage, read> maskState: array<u32>;` : ''}
@group(0) @binding(${sources + (masked ? 2 : 1)}) var<uniform> p: Params;
${
  masked
    ? `// Element i of an operand counts from the operand's offset.
${MASKED_BY_MODULE_WGSL}`
    : ''
}

fn store(q: Product, row0: u32, col0: u32, acc: Block) {
  let alpha = bitcast<f32>(q.c.x);
  let beta = bitcast<f32>(q.c.y);
  for (var r = 0u; r < ${block.rows}u; r++) {
    for (var c = 0u; c < ${block.cols}u; c++) {
      if (row0 + r < q.shape.x && col0 + c < q.shape.y) {
        let at = q.b.z + (row0 + r) * q.b.w + col0 + c;
        var value = alpha * acc[r * ${block.cols / 4}u + c / 4u][c % 4u];
        if (beta != 0.0) { value += beta * C[at]; }
        C[at] = value;
      }
    }
  }
}
${forms.map(product).join('\n')}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let block = (wid.x + wid.y * nwg.x) * BLOCKS + lid % BLOCKS;
  let slice = lid / BLOCKS;
  var which = 0u;
  for (var i = 1u; i < p.count; i++) {
    if (block >= p.products[4u * i + 3u].z) { which = i; }
  }
  let q = productAt(which);
  let blocksN = (q.shape.y + ${block.cols - 1}u) / ${block.cols}u;
  let local = block - q.c.z;
  let row0 = (local / blocksN) * ${block.rows}u;
  let col0 = (local % blocksN) * ${block.cols}u;
  var acc: Block;
  if (row0 < q.shape.x) {
    switch which {
${forms.map((_, i) => `      case ${i}u: { acc = product${i}(q, row0, col0, slice); }`).join('\n')}
      default: {}
    }
  }${handOver}
  if (row0 < q.shape.x) { store(q, row0, col0, acc); }
}
`;
}

const f32Bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

/** The block of C each invocation owns; cols a multiple of 4. */
export interface GroupedBlock {
  rows: number;
  cols: number;
}

export class GroupedMatmul {
  /** Compiled on first use, per form of group (most steps have a few). */
  private readonly kernels = new Map<string, Kernel>();
  /**
   * Operand buffers one dispatch binds: the device's storage buffers per stage but C and the dropout state (6 at
   * WebGPU's default of 8; a layer's eight LoRA gradient products read eight, which GPUs and both software
   * adapters allow).
   */
  readonly maxSources: number;

  /**
   * `block`: larger blocks load less per multiply, which is what CPU adapters pay for; smaller ones spread a
   * product over more invocations, which GPUs want (the adapter's matmul register block serves for both).
   * `kSlices`: invocations per block, each walking part of K (1, 2, 4 or 8; 1 on CPU adapters).
   */
  constructor(
    private readonly device: GPUDevice,
    private readonly block: GroupedBlock = { rows: 4, cols: 4 },
    private readonly kSlices = 1,
  ) {
    if (!(block.rows >= 1 && block.cols >= 4 && block.cols % 4 === 0)) {
      throw new Error(`a grouped matmul block needs whole vectors of columns, not ${block.rows} x ${block.cols}`);
    }
    if (![1, 2, 4, 8].includes(kSlices))
      throw new Error(`a grouped matmul's K slices are 1, 2, 4 or 8, not ${kSlices}`);
    this.maxSources = Math.min(2 * MAX_PRODUCTS, device.limits.maxStorageBuffersPerShaderStage - 2);
  }

  /**
   * The products into `c`, in order, packed into as few dispatches as the limits allow (MAX_PRODUCTS products and
   * maxSources operand buffers each). The products of a dispatch run at once, so their parts of `c` must not
   * overlap (LoRA's gradients: each module's dA and dB their own).
   */
  ops(products: readonly GroupedProduct[], c: GPUBuffer): Op[] {
    const ops: Op[] = [];
    let group: GroupedProduct[] = [];
    const sources = new Set<GPUBuffer>();
    for (const x of products) {
      const added = new Set([x.a, x.b].filter((b) => !sources.has(b))).size;
      if (group.length === MAX_PRODUCTS || sources.size + added > this.maxSources) {
        ops.push(this.op(group, c));
        group = [];
        sources.clear();
      }
      group.push(x);
      sources.add(x.a).add(x.b);
    }
    if (group.length > 0) ops.push(this.op(group, c));
    return ops;
  }

  /** One dispatch running every product into `c`. */
  op(products: readonly GroupedProduct[], c: GPUBuffer): Op {
    if (products.length === 0 || products.length > MAX_PRODUCTS) {
      throw new Error(`a grouped matmul runs 1 to ${MAX_PRODUCTS} products, not ${products.length}`);
    }
    const sources: GPUBuffer[] = [];
    const sourceOf = (buffer: GPUBuffer) => {
      if (buffer === c) throw new Error("a grouped matmul's operand cannot be its output buffer");
      let i = sources.indexOf(buffer);
      if (i < 0) i = sources.push(buffer) - 1;
      return i;
    };
    const masks = products.flatMap((x) => (x.mask ? [x.mask] : []));
    if (masks.some((m) => m.state !== masks[0].state || m.p !== masks[0].p)) {
      throw new Error("a grouped matmul's dropout masks must share one state and probability");
    }
    const forms: ProductForm[] = [];
    const table: number[] = [];
    const perGroup = WG / this.kSlices;
    let block = 0;
    for (const x of products) {
      const s = resolveMatmulShape(x.shape, x);
      if (s.batch !== 1) throw new Error('a grouped matmul runs single products, not batches');
      forms.push({ a: sourceOf(x.a), b: sourceOf(x.b), transA: x.transA, transB: x.transB, mask: x.mask?.operand });
      table.push(
        ...[s.M, s.N, s.K, 0, 0, s.offsetA, s.lda, 0],
        ...[s.offsetB, s.ldb, s.offsetC, s.ldc, f32Bits(s.alpha), f32Bits(s.beta), block, x.mask?.module ?? 0],
      );
      // The next product starts on a fresh workgroup.
      const blocks = Math.ceil(s.M / this.block.rows) * Math.ceil(s.N / this.block.cols);
      block += Math.ceil(blocks / perGroup) * perGroup;
    }
    if (sources.length > this.maxSources) {
      throw new Error(`a grouped matmul reads at most ${this.maxSources} operand buffers, not ${sources.length}`);
    }
    const mask = masks[0];
    const uniforms = PARAMS.pack({
      count: products.length,
      threshold: mask ? dropoutThreshold(mask.p) : 0,
      maskScale: mask ? 1 / (1 - mask.p) : 0,
      products: table,
    });
    return this.kernel(forms, sources.length).op(
      [...sources, c, ...(mask ? [mask.state] : [])],
      uniforms,
      grid1d(block, perGroup),
    );
  }

  private kernel(forms: ProductForm[], sources: number): Kernel {
    const code = shader(forms, sources, this.block, this.kSlices);
    let kernel = this.kernels.get(code);
    if (!kernel) {
      kernel = new Kernel(this.device, code, `grouped_matmul_${forms.length}`);
      this.kernels.set(code, kernel);
    }
    return kernel;
  }
}
