import { QUANT_LAYOUT, type QuantFormat, quantBytes } from '../../../core/base-precision';
import { f16BitsToF32Bits, float32FromBits, halfBits } from '../../../core/float16';

/**
 * Frozen base matrices stored quantized on the GPU, dequantized in registers by the kernels that read them. A matrix
 * [rows, cols] (PyTorch's [out, in]) is one u32 array:
 *   q8   8-bit codes, a scale per row, each row its cols / 4 code words then a word with its fp16 scale (so a run of
 *        whole rows, such as a slice of the LM head's vocabulary, reads from any row):   w = code · s,  s = max|row| / 127
 *   q4   4-bit codes in groups of 32 along the row:   w = (code − 8) · s_group,  s = (the largest |w|, signed) / −8
 *   nf4  4-bit codes in groups of 64 along the row:   w = NF4[code] · s_group,   s = max|group|
 *        (4-bit: all the codes, 8 a word, then the groups' fp16 scales, two a word)
 * q4 is llama.cpp's q4_0 grid (16 levels, the extreme one on the largest weight's side); nf4 is QLoRA's NormalFloat
 * code book (levels at normal quantiles, for normally distributed weights). Codes fill words low bits first.
 */
export type { QuantFormat };

export const QUANT_FORMATS: readonly QuantFormat[] = ['q8', 'q4', 'nf4'];

/** QLoRA's NF4 levels (bitsandbytes' table): quantiles of N(0, 1) scaled to [−1, 1], with an exact 0. */
export const NF4_LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
] as const;

/** Weights that share a scale: a row of `cols` for q8, the format's group otherwise. */
export function groupSize(format: QuantFormat, cols: number): number {
  return QUANT_LAYOUT[format].group || cols;
}

/** Why a matrix of `cols` columns cannot be stored in `format` (whole groups and whole words a row), or null. */
export function quantRefusal(format: QuantFormat, cols: number): string | null {
  const unit = QUANT_LAYOUT[format].bits === 8 ? 4 : QUANT_LAYOUT[format].group;
  return cols % unit === 0 ? null : `${format} needs rows of a multiple of ${unit} weights, not ${cols}`;
}

/** u32 words of a [rows, cols] matrix in `format`. */
export function quantWordCount(format: QuantFormat, rows: number, cols: number): number {
  return quantBytes(format, rows, cols) / 4;
}

/** Where element i's code is (its word, its bit offset there) and its scale's half (word, which half). */
function locate(format: QuantFormat, i: number, rows: number, cols: number) {
  if (format === 'q8') {
    const [row, col] = [Math.floor(i / cols), i % cols];
    const stride = cols / 4 + 1;
    return { word: row * stride + (col >> 2), shift: (col & 3) * 8, scaleWord: row * stride + cols / 4, half: 0 };
  }
  const g = Math.floor(i / QUANT_LAYOUT[format].group);
  return { word: i >> 3, shift: (i & 7) * 4, scaleWord: (rows * cols) / 8 + (g >> 1), half: g & 1 };
}

/** The code of w / s: the nearest level, ties away from zero as round() does; 0 maps to the zero level. */
function encode(format: QuantFormat, scaled: number): number {
  if (format === 'q8') return Math.max(-127, Math.min(127, Math.round(scaled))) & 0xff;
  if (format === 'q4') return Math.max(0, Math.min(15, Math.round(scaled) + 8));
  let best = 0;
  for (let c = 1; c < 16; c++) if (Math.abs(NF4_LEVELS[c] - scaled) < Math.abs(NF4_LEVELS[best] - scaled)) best = c;
  return best;
}

/** fp16 bits as the number the GPU's unpack2x16float widens them to. */
const halfValue = (bits: number) => float32FromBits(f16BitsToF32Bits(bits));

/** The matrix `values` [rows, cols] quantized, in the layout above. */
export function quantize(values: ArrayLike<number>, rows: number, cols: number, format: QuantFormat): Uint32Array {
  const refusal = quantRefusal(format, cols);
  if (refusal) throw new Error(refusal);
  if (values.length !== rows * cols) throw new Error(`${values.length} values are not a ${rows}x${cols} matrix`);
  const words = new Uint32Array(quantWordCount(format, rows, cols));
  const group = groupSize(format, cols);
  for (let start = 0; start < values.length; start += group) {
    let extreme = 0;
    for (let i = start; i < start + group; i++) if (Math.abs(values[i]) > Math.abs(extreme)) extreme = values[i];
    const bits = halfBits(
      format === 'q8' ? Math.abs(extreme) / 127 : format === 'q4' ? extreme / -8 : Math.abs(extreme),
    );
    const at = locate(format, start, rows, cols);
    words[at.scaleWord] |= bits << (16 * at.half);
    // Codes from the fp16 scale the kernels multiply by, so each code is the nearest for the stored scale.
    const s = halfValue(bits);
    for (let i = start; i < start + group; i++) {
      const code = encode(format, s === 0 ? 0 : values[i] / s);
      const { word, shift } = locate(format, i, rows, cols);
      words[word] |= code << shift;
    }
  }
  return words;
}

/** The matrix the kernels compute with: `words` [rows, cols] in `format` dequantized (the kernels' CPU twin). */
export function dequantize(words: Uint32Array, rows: number, cols: number, format: QuantFormat): Float32Array {
  const { bits } = QUANT_LAYOUT[format];
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    const at = locate(format, i, rows, cols);
    const code = (words[at.word] >>> at.shift) & ((1 << bits) - 1);
    const s = halfValue((words[at.scaleWord] >>> (16 * at.half)) & 0xffff);
    const level = format === 'q8' ? (code << 24) >> 24 : format === 'q4' ? code - 8 : NF4_LEVELS[code];
    out[i] = Math.fround(level * s);
  }
  return out;
}

/** Codes a u32 word holds: 4 (q8) or 8 (4-bit). */
export const codesPerWord = (format: QuantFormat) => 32 / QUANT_LAYOUT[format].bits;

/**
 * WGSL for the matrices `names` (each an array<u32>) in `format`, `rows` × `cols` (a q8 matrix's rows counted from
 * any row: an offset into the LM head's vocabulary):
 *   `codeWord_M(row, col, rows, cols) -> u32`     the word holding (row, col)'s code (col a multiple of 4 or 8)
 *   `scale_M(row, col, rows, cols) -> f32`        its scale
 *   `levels_M(w)`                                  word w's codes as levels, unscaled: a vec4f (q8), or two (4-bit,
 *                                                  which `dotPair(d, a, b)` dots with two vec4f)
 *   `dequantAt_M(row, col, rows, cols) -> f32`     element (row, col)
 *   `dequant_M(i, rows, cols) -> f32`              element i (row-major), for loads by flat index
 * A word never straddles rows or groups; no division but by constants (shifts).
 */
export function dequantWgsl(format: QuantFormat, names: readonly string[]): string {
  const { bits, group } = QUANT_LAYOUT[format];
  const perWord = 32 / bits;
  const level = (code: string) =>
    format === 'q8' ? `f32((i32(${code}) << 24u) >> 24u)` : format === 'q4' ? `f32(i32(${code}) - 8)` : `NF4[${code}]`;
  // A word's levels through the unpack built-ins, which SwiftShader runs in half the time of shifts and conversions
  // lane by lane. q8: c = 127 · snorm(byte); q4: c − 8 = 255 · unorm(nibble) − 8, the even nibbles from
  // w & 0x0f0f0f0f, the odd from w >> 4; nf4: each code through its table.
  const nibbles = (w: string) => `fma(unpack4x8unorm(${w} & 0x0f0f0f0fu), vec4f(255.0), vec4f(-8.0))`;
  const nf4Lanes = (from: number) =>
    `vec4f(${[0, 1, 2, 3].map((l) => level(`(w >> ${4 * (from + l)}u) & 15u`)).join(', ')})`;
  const levelsBody = {
    q8: 'return unpack4x8snorm(w) * 127.0;',
    q4: `let even = ${nibbles('w')};
  let odd = ${nibbles('(w >> 4u)')};
  return array<vec4f, 2>(vec4f(even.x, odd.x, even.y, odd.y), vec4f(even.z, odd.z, even.w, odd.w));`,
    nf4: `return array<vec4f, 2>(${nf4Lanes(0)}, ${nf4Lanes(4)});`,
  }[format];
  // q8: rows of cols / 4 code words and a scale word; 4-bit: all the codes, then the groups' scales.
  const word = format === 'q8' ? 'row * (cols / 4u + 1u) + col / 4u' : '(row * cols + col) / 8u';
  const scale = (name: string) =>
    format === 'q8'
      ? `unpack2x16float(${name}[row * (cols / 4u + 1u) + cols / 4u]).x`
      : `unpack2x16float(${name}[rows * cols / 8u + (row * cols + col) / ${group * 2}u])[((row * cols + col) / ${group}u) & 1u]`;
  const functions = names.map(
    (name) => /* wgsl */ `
fn codeWord_${name}(row: u32, col: u32, rows: u32, cols: u32) -> u32 { return ${word}; }

fn scale_${name}(row: u32, col: u32, rows: u32, cols: u32) -> f32 { return ${scale(name)}; }

fn levels_${name}(w: u32) -> ${bits === 8 ? 'vec4f' : 'array<vec4f, 2>'} {
  ${levelsBody}
}

fn dequantAt_${name}(row: u32, col: u32, rows: u32, cols: u32) -> f32 {
  let code = (${name}[codeWord_${name}(row, col, rows, cols)] >> ((col % ${perWord}u) * ${bits}u)) & ${(1 << bits) - 1}u;
  return ${level('code')} * scale_${name}(row, col, rows, cols);
}

fn dequant_${name}(i: u32, rows: u32, cols: u32) -> f32 { return dequantAt_${name}(i / cols, i % cols, rows, cols); }`,
  );
  const levels = format === 'nf4' ? `const NF4 = array<f32, 16>(${NF4_LEVELS.join(', ')});\n` : '';
  const pair =
    bits === 4
      ? "\n// A word's eight weights · eight x.\nfn dotPair(d: array<vec4f, 2>, a: vec4f, b: vec4f) -> f32 { return dot(d[0], a) + dot(d[1], b); }"
      : '';
  return `// ${format} matrices.\n${levels}${functions.join('\n')}${pair}`;
}
