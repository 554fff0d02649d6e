import type { AdapterSummary, GpuUnavailableReason } from '../../core/adapter';
import type { SelfTestResult } from './self-test';

/** The engine worker's answer to "which GPU do I have?": the adapter and a verified kernel run, or why not. */
export type GpuReport =
  | { ok: true; adapter: AdapterSummary; selfTest: SelfTestResult }
  | { ok: false; reason: GpuUnavailableReason; message: string };

/** What the UI may ask of the engine worker (exposed with comlink). */
export interface EngineApi {
  gpuReport(): Promise<GpuReport>;
}
