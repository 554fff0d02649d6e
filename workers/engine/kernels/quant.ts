import { f16BitsToF32Bits, float32FromBits, halfBits } from '../../../core/float16';

/**
 * Frozen base matrices stored quantized on the GPU, dequantized in registers by the kernels that read them. A matrix
 * [rows, cols] (PyTorch's [out, in]) is one u32 array: its codes, then its fp16 scales, two a word.
 *   q8   8-bit codes, a scale per row:                 w = code · s_row,          s = max|row| / 127
 *   q4   4-bit codes in groups of 32 along the row:   w = (code − 8) · s_group,  s = (the largest |w|, signed) / −8
 *   nf4  4-bit codes in groups of 64 along the row:   w = NF4[code] · s_group,   s = max|group|
 * q4 is llama.cpp's q4_0 grid (16 levels, the extreme one on the largest weight's side); nf4 is QLoRA's NormalFloat
 * code book (levels at normal quantiles, for normally distributed weights). Element i of the matrix is code i: 4 a
 * word (q8) or 8 a word (4-bit), low bits first; group g's scale is half g after the codes.
 */
export type QuantFormat = 'q8' | 'q4' | 'nf4';

export const QUANT_FORMATS: readonly QuantFormat[] = ['q8', 'q4', 'nf4'];

/** QLoRA's NF4 levels (bitsandbytes' table): quantiles of N(0, 1) scaled to [−1, 1], with an exact 0. */
export const NF4_LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
] as const;

/** Bits per code, and how many consecutive weights of a row share a scale (0: the whole row). */
const LAYOUT: Record<QuantFormat, { bits: 8 | 4; group: number }> = {
  q8: { bits: 8, group: 0 },
  q4: { bits: 4, group: 32 },
  nf4: { bits: 4, group: 64 },
};

/** Weights that share a scale: a row of `cols` for q8, the format's group otherwise. */
export function groupSize(format: QuantFormat, cols: number): number {
  return LAYOUT[format].group || cols;
}

/** Why a matrix of `cols` columns cannot be stored in `format` (whole groups and whole words a row), or null. */
export function quantRefusal(format: QuantFormat, cols: number): string | null {
  const unit = LAYOUT[format].bits === 8 ? 4 : LAYOUT[format].group;
  return cols % unit === 0 ? null : `${format} needs rows of a multiple of ${unit} weights, not ${cols}`;
}

/** Words of codes, and the u32 words of the whole matrix (codes, then scales). */
export function quantWords(format: QuantFormat, rows: number, cols: number): { codes: number; total: number } {
  const codes = (rows * cols * LAYOUT[format].bits) / 32;
  const scales = (rows * cols) / groupSize(format, cols);
  return { codes, total: codes + Math.ceil(scales / 2) };
}

/** The code of w / s: the nearest level, ties away from zero as round() does; 0 maps to the zero level. */
function encode(format: QuantFormat, scaled: number): number {
  if (format === 'q8') return Math.max(-127, Math.min(127, Math.round(scaled))) & 0xff;
  if (format === 'q4') return Math.max(0, Math.min(15, Math.round(scaled) + 8));
  let best = 0;
  for (let c = 1; c < 16; c++) if (Math.abs(NF4_LEVELS[c] - scaled) < Math.abs(NF4_LEVELS[best] - scaled)) best = c;
  return best;
}

/** The matrix `values` [rows, cols] quantized (codes, then fp16 scales). */
export function quantize(values: ArrayLike<number>, rows: number, cols: number, format: QuantFormat): Uint32Array {
  const refusal = quantRefusal(format, cols);
  if (refusal) throw new Error(refusal);
  if (values.length !== rows * cols) throw new Error(`${values.length} values are not a ${rows}x${cols} matrix`);
  const { codes, total } = quantWords(format, rows, cols);
  const words = new Uint32Array(total);
  const scales = new Uint16Array(words.buffer, codes * 4, (total - codes) * 2);
  const group = groupSize(format, cols);
  const perWord = 32 / LAYOUT[format].bits;
  for (let g = 0; g * group < values.length; g++) {
    const start = g * group;
    let extreme = 0;
    for (let i = start; i < start + group; i++) if (Math.abs(values[i]) > Math.abs(extreme)) extreme = values[i];
    const bits = halfBits(
      format === 'q8' ? Math.abs(extreme) / 127 : format === 'q4' ? extreme / -8 : Math.abs(extreme),
    );
    scales[g] = bits;
    // Codes from the fp16 scale the kernels multiply by, so each code is the nearest for the stored scale.
    const s = halfValue(bits);
    for (let i = start; i < start + group; i++) {
      const code = s === 0 ? encode(format, 0) : encode(format, values[i] / s);
      words[Math.floor(i / perWord)] |= code << ((i % perWord) * LAYOUT[format].bits);
    }
  }
  return words;
}

/** fp16 bits as the number the GPU's unpack2x16float widens them to. */
const halfValue = (bits: number) => float32FromBits(f16BitsToF32Bits(bits));

/** The matrix the kernels compute with: `words` [rows, cols] in `format` dequantized (the kernels' CPU twin). */
export function dequantize(words: Uint32Array, rows: number, cols: number, format: QuantFormat): Float32Array {
  const { codes } = quantWords(format, rows, cols);
  const scales = new Uint16Array(words.buffer, words.byteOffset + codes * 4, (words.length - codes) * 2);
  const group = groupSize(format, cols);
  const { bits } = LAYOUT[format];
  const perWord = 32 / bits;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    const code = (words[Math.floor(i / perWord)] >>> ((i % perWord) * bits)) & ((1 << bits) - 1);
    const s = halfValue(scales[Math.floor(i / group)]);
    const level = format === 'q8' ? (code << 24) >> 24 : format === 'q4' ? code - 8 : NF4_LEVELS[code];
    out[i] = Math.fround(level * s);
  }
  return out;
}

/** Codes a u32 word holds: 4 (q8) or 8 (4-bit). */
export const codesPerWord = (format: QuantFormat) => 32 / LAYOUT[format].bits;

/**
 * WGSL for the matrices `names` (each an array<u32>) in `format`: `dequant_M(i, count, cols) -> f32`, element i of
 * M, a matrix of `count` elements and `cols` columns; and `dequantWord_M(word, i0, count, cols)`, the codes of one
 * word whose first element is i0, widened and scaled: a vec4f (q8), or two (4-bit; a word never straddles groups),
 * which `dotPair(d, a, b)` dots with two vec4f.
 */
export function dequantWgsl(format: QuantFormat, names: readonly string[]): string {
  const { bits, group } = LAYOUT[format];
  const perWord = 32 / bits;
  const scale = (name: string, i: string) => {
    const g = group ? `${i} / ${group}u` : `${i} / cols`;
    return `unpack2x16float(${name}[count / ${perWord}u + (${g}) / 2u])[(${g}) & 1u]`;
  };
  const level = (code: string) =>
    format === 'q8' ? `f32((i32(${code}) << 24u) >> 24u)` : format === 'q4' ? `f32(i32(${code}) - 8)` : `NF4[${code}]`;
  const lanes = (from: number) =>
    `vec4f(${[0, 1, 2, 3].map((l) => level(`(w >> ${bits * (from + l)}u) & ${(1 << bits) - 1}u`)).join(', ')})`;
  const functions = names.map(
    (name) => /* wgsl */ `
fn dequant_${name}(i: u32, count: u32, cols: u32) -> f32 {
  let code = (${name}[i / ${perWord}u] >> ((i % ${perWord}u) * ${bits}u)) & ${(1 << bits) - 1}u;
  return ${level('code')} * ${scale(name, 'i')};
}

fn dequantWord_${name}(w: u32, i0: u32, count: u32, cols: u32) -> ${bits === 8 ? 'vec4f' : 'array<vec4f, 2>'} {
  let s = ${scale(name, 'i0')};
  return ${bits === 8 ? `s * ${lanes(0)}` : `array<vec4f, 2>(s * ${lanes(0)}, s * ${lanes(4)})`};
}`,
  );
  const levels = format === 'nf4' ? `const NF4 = array<f32, 16>(${NF4_LEVELS.join(', ')});\n` : '';
  const pair =
    bits === 4
      ? "\n// A word's eight weights · eight x.\nfn dotPair(d: array<vec4f, 2>, a: vec4f, b: vec4f) -> f32 { return dot(d[0], a) + dot(d[1], b); }"
      : '';
  return `// ${format} matrices: codes, then fp16 scales.\n${levels}${functions.join('\n')}${pair}`;
}
