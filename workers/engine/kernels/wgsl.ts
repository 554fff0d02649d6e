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
