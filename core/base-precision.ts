import type { ModelConfig } from './model-config';

/**
 * How a LoRA run holds the frozen base model's seven projections on the GPU: fp16 (fp32 on CPU adapters), or
 * quantized (workers/engine/kernels/quant.ts): 8-bit per row, or 4-bit in groups (llama.cpp's q4_0 grid, QLoRA's NF4).
 * Embeddings, the LM head and norms keep the model's table precision; LoRA's parameters, gradients and moments fp32.
 */
export type QuantFormat = 'q8' | 'q4' | 'nf4';
export type BasePrecision = 'f16' | QuantFormat;

export const BASE_PRECISIONS: readonly BasePrecision[] = ['f16', 'q8', 'q4', 'nf4'];

export const BASE_PRECISION_LABELS: Record<BasePrecision, string> = {
  f16: '16-bit',
  q8: '8-bit',
  q4: '4-bit',
  nf4: '4-bit NF4',
};

/**
 * What exporting a run trained over `base` folds the adapter into, where it is a quantized copy (null for 16-bit):
 * the exports read the model's original weights again, never the copy on the GPU.
 */
export function originalWeightsNote(base: BasePrecision): string | null {
  if (base === 'f16') return null;
  return `The run trained over a ${BASE_PRECISION_LABELS[base]} copy of the base; the adapter folds into the original weights, read again, not into that copy.`;
}

/** Bits per code, and weights a scale (0: one per row), of each quantized format. */
export const QUANT_LAYOUT: Record<QuantFormat, { bits: 8 | 4; group: number }> = {
  q8: { bits: 8, group: 0 },
  q4: { bits: 4, group: 32 },
  nf4: { bits: 4, group: 64 },
};

/** Bytes of a [rows, cols] matrix quantized: q8 a byte a weight and a scale word a row; 4-bit codes and fp16 scales. */
export function quantBytes(format: QuantFormat, rows: number, cols: number): number {
  const { group } = QUANT_LAYOUT[format];
  if (format === 'q8') return rows * cols + 4 * rows;
  return (rows * cols) / 2 + 4 * Math.ceil((rows * cols) / group / 2);
}

/**
 * Models from this many parameters default to a 4-bit base (1.5B and up: a 16-bit 1.5B model's weights alone are
 * 3 GB); the 1B class stays 16-bit.
 */
export const QUANTIZED_FROM_PARAMETERS = 1.3e9;

/**
 * The base precision a model loads at unless the person picks another: 16-bit below QUANTIZED_FROM_PARAMETERS,
 * else 4-bit (q4: its validation loss after fine-tuning came closest to 16-bit's, docs/PERFORMANCE.md), where every
 * projection's rows are whole 4-bit groups, else 8-bit where they are whole words.
 */
export function defaultBasePrecision(config: ModelConfig, parameters: number): BasePrecision {
  if (parameters < QUANTIZED_FROM_PARAMETERS) return 'f16';
  return wholeGroups(config, 'q4') ? 'q4' : wholeGroups(config, 'q8') ? 'q8' : 'f16';
}

/** Whether every projection's rows hold whole groups of `format` (q8's: whole words of 4). */
export function wholeGroups(config: ModelConfig, format: QuantFormat): boolean {
  const unit = QUANT_LAYOUT[format].group || 4;
  const { hiddenSize: d, intermediateSize: f, numHeads: H, headDim: hd } = config;
  return [d, f, H * hd].every((cols) => cols % unit === 0);
}
