import type { LoadedAdapter } from '../../../core/checkpoint';
import { scoredPosition } from '../../../core/training/reward-model';
import { submitOps } from '../gpu/ops';
import type { EngineKernels } from './kernels';
import { GpuLora } from './lora';
import { RewardHead } from './reward-head';
import { TransformerStep } from './transformer';
import type { GpuWeights } from './weights';

/**
 * A trained reward model scoring token sequences: the base weights with the reward adapter's LoRA, read through its
 * score head at each sequence's last real token, `rows` sequences of up to `seq` tokens per forward. It shares the
 * base weights with whatever else runs on them (the policy being trained), so it costs only its adapter and
 * activations.
 */
export class RewardScorer {
  private readonly lora: GpuLora;
  private readonly step: TransformerStep;
  private readonly head: RewardHead;

  constructor(
    private readonly device: GPUDevice,
    kernels: EngineKernels,
    weights: GpuWeights,
    adapter: LoadedAdapter,
    shape: { rows: number; seq: number },
    private readonly padId: number,
  ) {
    if (adapter.scoreKey === null) throw new Error('a reward scorer needs a reward model adapter (with a score head)');
    this.lora = GpuLora.fromAdapter(device, weights.config, adapter);
    this.step = new TransformerStep(
      device,
      kernels,
      weights,
      this.lora,
      { batch: shape.rows, seq: shape.seq },
      { full: false, output: 'hidden', forwardOnly: true },
    );
    this.head = new RewardHead(
      device,
      kernels,
      this.step,
      Float32Array.from(adapter.file.readFloat32(adapter.scoreKey)),
    );
  }

  /** The score of each sequence (token ids, at most `seq` long; longer ones are cut to their first `seq`). */
  async score(sequences: readonly (readonly number[])[]): Promise<number[]> {
    const { batch: rows, seq } = this.step.shape;
    const scores: number[] = [];
    for (let first = 0; first < sequences.length; first += rows) {
      const chunk = sequences.slice(first, first + rows);
      const tokens = Array.from({ length: rows }, (_, row) => {
        const ids = (chunk[row] ?? [this.padId]).slice(0, seq);
        return [...ids, ...new Array<number>(seq - ids.length).fill(this.padId)];
      });
      this.step.setBatch(tokens);
      this.head.setPositions(tokens.map((ids, row) => row * seq + scoredPosition(ids, seq, this.padId)));
      submitOps(this.device, [...this.step.forwardOps, ...this.head.forwardOps]);
      const read = await this.head.readScores();
      scores.push(...Array.from(read.subarray(0, chunk.length)));
    }
    return scores;
  }

  destroy(): void {
    this.head.destroy();
    this.step.destroy();
    this.lora.destroy();
  }
}
