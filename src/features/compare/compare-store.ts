import { create } from 'zustand';
import { DEFAULT_SAMPLING, type SamplingSettings } from '../../../core/generation/sampling';
import type { GenerateResult, ImportedAdapterSummary, KeptCheckpoint } from '../../../workers/engine/api';
import { useModel } from '../../stores/model';

export type Side = 'base' | 'tuned';

/** Where the tuned side's adapter comes from: this run, an imported folder, or a kept run at a checkpoint. */
export type Adapter = 'run' | 'imported' | KeptCheckpoint;

export interface Turn {
  user: string;
  /** The dataset's own answer, when the prompt came from the validation split. */
  reference: string | null;
  /** Each side's answer to this turn (each side keeps its own history). */
  answers: Record<Side, { text: string; result: GenerateResult | null; error: string | null }>;
}

export interface CompareSettings extends SamplingSettings {
  maxNewTokens: number;
  seed: number;
  system: string;
  /** Texts that end an answer, one per line. */
  stop: string;
}

/** The Compare step's conversation and settings, kept while the person visits other steps. */
interface CompareState {
  turns: Turn[];
  settings: CompareSettings;
  adapter: Adapter;
  /** The adapter imported beside a model (the engine holds one at a time, and lets it go with its model). */
  imported: (ImportedAdapterSummary & { model: string }) | null;
  setImported: (summary: ImportedAdapterSummary, model: string) => void;
  setSettings: (s: Partial<CompareSettings>) => void;
  setAdapter: (a: Adapter) => void;
  addTurn: (user: string, reference: string | null) => void;
  update: (side: Side, patch: Partial<Turn['answers'][Side]>) => void;
  clear: () => void;
}

export const useCompare = create<CompareState>((set) => ({
  turns: [],
  settings: { ...DEFAULT_SAMPLING, maxNewTokens: 64, seed: 0, system: '', stop: '' },
  adapter: 'run',
  imported: null,
  setImported: (summary, model) => set({ imported: { ...summary, model }, adapter: 'imported' }),
  setSettings: (s) => set((state) => ({ settings: { ...state.settings, ...s } })),
  setAdapter: (adapter) => set({ adapter }),
  addTurn: (user, reference) =>
    set((state) => ({
      turns: [
        ...state.turns,
        {
          user,
          reference,
          answers: {
            base: { text: '', result: null, error: null },
            tuned: { text: '', result: null, error: null },
          },
        },
      ],
    })),
  update: (side, patch) =>
    set((state) => {
      const turns = state.turns.slice();
      const last = turns[turns.length - 1];
      turns[turns.length - 1] = { ...last, answers: { ...last.answers, [side]: { ...last.answers[side], ...patch } } };
      return { turns };
    }),
  clear: () => set({ turns: [] }),
}));

/** The imported adapter, while the model it was imported beside is the one loaded. */
export function useImported(): ImportedAdapterSummary | null {
  const imported = useCompare((s) => s.imported);
  const model = useModel((s) => s.loaded?.label);
  return imported && imported.model === model ? imported : null;
}
