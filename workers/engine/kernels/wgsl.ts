import { f32, grid1d, i32, type UniformValue, u32 } from '../gpu/kernel';

/** WGSL pieces several kernels share. */

/**
 * `reduce(value, li, isMax)`: the sum (or max) of `value` over a workgroup of `size` invocations, returned to
 * all of them. Call it from uniform control flow only (it has barriers).
 */
export function workgroupReduce(size: number): string {
  return /* wgsl */ `
var<workgroup> partial: array<f32, ${size}>;

fn reduce(value: f32, li: u32, isMax: bool) -> f32 {
  partial[li] = value;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride >>= 1u) {
    if (li < stride) {
      let other = partial[li + stride];
      partial[li] = select(partial[li] + other, max(partial[li], other), isMax);
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}
`;
}

/**
 * How a kernel that reduces along rows spreads them over invocations:
 *   - 'cooperative' (GPUs): a workgroup of ROW_THREADS invocations shares each row, striding along it together,
 *     and reduces through workgroup memory;
 *   - 'row' (CPU adapters): each invocation owns a row and walks it alone, with no workgroup memory and no
 *     barriers, which software adapters run as costly switches between invocations.
 */
export type RowLayout = 'cooperative' | 'row';

const ROW_THREADS = 64;

/**
 * The pieces a row-reducing kernel is written with, for a layout: its entry point's `builtins`, a `prelude`
 * defining `row` (the row this invocation works on) and `li` (where it starts along the row), the `stride` it steps
 * by, `reduce(value, li, isMax)` over the row's invocations, and the `workgroups` to dispatch for `rows` rows.
 * The kernel's body is then the same in both layouts.
 */
export function rowKernel(layout: RowLayout) {
  const size = ROW_THREADS;
  if (layout === 'cooperative') {
    return {
      size,
      builtins:
        '@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32',
      prelude: 'let row = wg.x + wg.y * nwg.x;',
      stride: `${size}u`,
      reduce: workgroupReduce(size),
      workgroups: (rows: number) => grid1d(rows, 1),
    };
  }
  return {
    size,
    builtins: '@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u',
    prelude: `let row = gid.x + gid.y * nwg.x * ${size}u;\n  let li = 0u;`,
    stride: '1u',
    reduce: 'fn reduce(value: f32, li: u32, isMax: bool) -> f32 { return value; }',
    workgroups: (rows: number) => grid1d(rows, size),
  };
}

type UniformScalar = 'u32' | 'f32' | 'i32';
/** A uniform field's type: a scalar, or `{ vec4u: n }` for array<vec4u, n> (its values flattened, 4 per element). */
export type UniformField = UniformScalar | { vec4u: number };
type UniformValues<F> = { [K in keyof F]: F[K] extends UniformScalar ? number : readonly number[] };

/**
 * A WGSL uniform struct declared once, for its WGSL text and its packing: `wgsl` is `struct <name> { ... }` with the
 * fields in order, padded (`_p0`, …) so arrays start and the struct ends on 16 bytes; `pack` gives the values in
 * that order, as Kernel.op takes them.
 */
export function uniformStruct<const F extends Record<string, UniformField>>(fields: F, name = 'Params') {
  const decls: string[] = [];
  const slots: Array<{ field: keyof F | null; type: UniformScalar; index: number }> = [];
  let pads = 0;
  const pad = () => {
    decls.push(`_p${pads++}: u32`);
    slots.push({ field: null, type: 'u32', index: 0 });
  };
  for (const [field, type] of Object.entries(fields)) {
    if (typeof type === 'string') {
      decls.push(`${field}: ${type}`);
      slots.push({ field, type, index: 0 });
      continue;
    }
    while (slots.length % 4 !== 0) pad();
    decls.push(`${field}: array<vec4u, ${type.vec4u}>`);
    for (let i = 0; i < type.vec4u * 4; i++) slots.push({ field, type: 'u32', index: i });
  }
  while (slots.length % 4 !== 0) pad();
  return {
    wgsl: `struct ${name} { ${decls.join(', ')} }`,
    pack(values: UniformValues<F>): UniformValue[] {
      return slots.map(({ field, type, index }) => {
        const value = field === null ? 0 : values[field];
        const n = typeof value === 'number' ? value : (value[index] ?? 0);
        return type === 'u32' ? u32(n) : type === 'f32' ? f32(n) : i32(n);
      });
    },
  };
}
