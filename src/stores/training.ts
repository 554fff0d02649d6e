import { create } from 'zustand';
import type { AdapterShape } from '../../core/training/continue-adapter';
import type { MetricRecord } from '../../core/training/metrics';
import type { TrainSettings } from '../../core/training/settings';
import type { RewardChoice, TrainEvent } from '../../workers/engine/api';

export type RunStatus = 'idle' | 'preparing' | 'running' | 'paused' | 'finished' | 'stopped' | 'failed';

type Prepared = Extract<TrainEvent, { type: 'prepared' }>;

/** A PEFT adapter folder (or its zip) a person picked. */
export interface PickedAdapter {
  name: string;
  files: { path: string; file: Blob }[];
  /** Its LoRA shape, which the run's settings keep while it is picked. */
  shape: AdapterShape;
}

/** The run the Train step started: its state, what it trains on, every metric so far, and when steps landed. */
interface TrainingState {
  /** The settings being edited (null until the step first opens with a model loaded). */
  settings: TrainSettings | null;
  setSettings: (settings: TrainSettings) => void;
  /** An adapter the run continues, as picked in the Train step. */
  initialAdapter: PickedAdapter | null;
  setInitialAdapter: (picked: PickedAdapter | null) => void;
  /** Policy optimization's reward, as picked in the Train step. */
  reward: RewardChoice | null;
  setReward: (reward: RewardChoice | null) => void;
  status: RunStatus;
  prepared: Prepared | null;
  metrics: MetricRecord[];
  /** Wall-clock time of each training step's report, for the ETA. */
  stepTimes: number[];
  lastCheckpoint: number | null;
  message: string | null;
  reset: (status: RunStatus) => void;
  setStatus: (status: RunStatus) => void;
  handle: (event: TrainEvent) => void;
  fail: (message: string) => void;
}

export const useTraining = create<TrainingState>((set) => ({
  settings: null,
  setSettings: (settings) => set({ settings }),
  reward: null,
  setReward: (reward) => set({ reward }),
  initialAdapter: null,
  setInitialAdapter: (initialAdapter) => set({ initialAdapter }),
  status: 'idle',
  prepared: null,
  metrics: [],
  stepTimes: [],
  lastCheckpoint: null,
  message: null,
  reset: (status) => set({ status, prepared: null, metrics: [], stepTimes: [], lastCheckpoint: null, message: null }),
  fail: (message) => set({ status: 'failed', message }),
  setStatus: (status) => set({ status, message: null }),
  handle: (event) =>
    set((s) => {
      switch (event.type) {
        case 'prepared':
          return { prepared: event, status: 'running', metrics: [], stepTimes: [] };
        case 'metric': {
          // A resumed run first replays its saved metrics: only steps trained now time the ETA.
          const trained = event.metric.type === 'train' && event.metric.step > (s.prepared?.step ?? 0);
          return {
            metrics: [...s.metrics, event.metric],
            stepTimes: trained ? [...s.stepTimes, performance.now()] : s.stepTimes,
          };
        }
        case 'checkpoint':
          return { lastCheckpoint: event.step };
        case 'failed':
          return { status: 'failed', message: event.message };
        default:
          return { status: event.type };
      }
    }),
}));
