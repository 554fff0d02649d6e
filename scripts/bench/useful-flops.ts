import { type ModelConfig, PROJECTIONS, projectionShape } from '../../core/model-config';

/**
 * Useful FLOPs of one LoRA step, as the peers count them: what the step must compute, not what it recomputes.
 * Per layer the frozen linears' forward and input-gradient products (no base-weight gradients), attention's
 * QKᵀ and PV forward and twice that backward (full T×T products), and the LoRA products (xA, (xA)B forward; dB,
 * d(xA), dA, dx backward); once, the tied LM head's forward and input gradient.
 */
export function usefulFlops(c: ModelConfig, batch: number, seq: number, rank: number) {
  const tokens = batch * seq;
  let linear = 0;
  let lora = 0;
  for (const p of PROJECTIONS) {
    const [out, inDim] = projectionShape(c, p);
    linear += 2 * 2 * tokens * inDim * out;
    lora += 6 * tokens * rank * (inDim + out);
  }
  const head = 2 * 2 * tokens * c.hiddenSize * c.vocabSize;
  const attention = 12 * batch * seq * seq * c.headDim * c.numHeads;
  const total = (linear + lora + attention) * c.numLayers + head;
  return { total, linear: linear * c.numLayers, lora: lora * c.numLayers, attention: attention * c.numLayers, head };
}
