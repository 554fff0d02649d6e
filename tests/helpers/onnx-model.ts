/**
 * A tiny ONNX reward model written by hand (the protobuf wire format, no ONNX tooling needed): the score of a
 * sequence is the mean over its tokens of a per-token weight, `weights[id]`, so tests know every reward exactly.
 * Inputs `input_ids` and `attention_mask` ([batch, seq] int64, as Hugging Face's exports take them; the mask is
 * unused), output `logits` [batch, 1]. Opset 13: Gather, then ReduceMean over the sequence.
 */
type Field = [number, 'varint', number] | [number, 'bytes', Uint8Array | string];

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function message(fields: Field[]): Uint8Array {
  const bytes: number[] = [];
  for (const [number, kind, value] of fields) {
    if (kind === 'varint') {
      bytes.push(...varint(number * 8), ...varint(value));
    } else {
      const data = typeof value === 'string' ? new TextEncoder().encode(value) : value;
      bytes.push(...varint(number * 8 + 2), ...varint(data.length), ...data);
    }
  }
  return Uint8Array.from(bytes);
}

const FLOAT = 1;
const INT64 = 7;

function valueInfo(name: string, elemType: number, dims: (number | string)[]): Uint8Array {
  const shape = message(
    dims.map(
      (d): Field => [1, 'bytes', typeof d === 'number' ? message([[1, 'varint', d]]) : message([[2, 'bytes', d]])],
    ),
  );
  const tensorType = message([
    [1, 'varint', elemType],
    [2, 'bytes', shape],
  ]);
  return message([
    [1, 'bytes', name],
    [2, 'bytes', message([[1, 'bytes', tensorType]])],
  ]);
}

export function meanTokenWeightOnnx(weights: Float32Array): Uint8Array {
  const table = message([
    [1, 'varint', weights.length],
    [1, 'varint', 1],
    [2, 'varint', FLOAT],
    [8, 'bytes', 'token_weight'],
    [9, 'bytes', new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength)],
  ]);
  const gather = message([
    [1, 'bytes', 'token_weight'],
    [1, 'bytes', 'input_ids'],
    [2, 'bytes', 'per_token'],
    [4, 'bytes', 'Gather'],
  ]);
  const axes = message([
    [1, 'bytes', 'axes'],
    [8, 'varint', 1],
    [20, 'varint', 7],
  ]);
  const keepdims = message([
    [1, 'bytes', 'keepdims'],
    [3, 'varint', 0],
    [20, 'varint', 2],
  ]);
  const mean = message([
    [1, 'bytes', 'per_token'],
    [2, 'bytes', 'logits'],
    [4, 'bytes', 'ReduceMean'],
    [5, 'bytes', axes],
    [5, 'bytes', keepdims],
  ]);
  const graph = message([
    [1, 'bytes', gather],
    [1, 'bytes', mean],
    [2, 'bytes', 'mean_token_weight'],
    [5, 'bytes', table],
    [11, 'bytes', valueInfo('input_ids', INT64, ['batch', 'sequence'])],
    [11, 'bytes', valueInfo('attention_mask', INT64, ['batch', 'sequence'])],
    [12, 'bytes', valueInfo('logits', FLOAT, ['batch', 1])],
  ]);
  return message([
    [1, 'varint', 7],
    [2, 'bytes', 'hone-tests'],
    [7, 'bytes', graph],
    [8, 'bytes', message([[2, 'varint', 13]])],
  ]);
}
