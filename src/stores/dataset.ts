import { create } from 'zustand';
import type { DatasetFormat, FieldMapping } from '../../core/dataset/formats';
import { DEFAULT_DATA } from '../../core/training/settings';
import type { DatasetSummary, TokenSettings } from '../../workers/data/api';

/**
 * The dataset the person dropped, as the data worker summarised it, and how it is to be tokenized and split:
 * shared by the Data step (which sets it) and the Train step (which trains on it).
 */
interface DatasetState {
  files: File[];
  /** The person's format and field choices; empty means "as detected". */
  choice: { format?: DatasetFormat; mapping?: FieldMapping };
  summary: DatasetSummary | null;
  settings: TokenSettings;
  setFiles: (files: File[]) => void;
  setChoice: (choice: { format?: DatasetFormat; mapping?: FieldMapping }) => void;
  setSummary: (summary: DatasetSummary | null) => void;
  setSettings: (settings: Partial<TokenSettings>) => void;
}

const DEFAULT_TOKEN_SETTINGS: TokenSettings = {
  maxLength: DEFAULT_DATA.maxLength,
  trainOnPrompt: DEFAULT_DATA.trainOnPrompt,
  validation: DEFAULT_DATA.validation,
  seed: DEFAULT_DATA.splitSeed,
};

export const useDataset = create<DatasetState>((set) => ({
  files: [],
  choice: {},
  summary: null,
  settings: DEFAULT_TOKEN_SETTINGS,
  setFiles: (files) => set({ files, choice: {}, summary: null }),
  setChoice: (choice) => set({ choice }),
  setSummary: (summary) => set({ summary }),
  setSettings: (settings) => set((s) => ({ settings: { ...s.settings, ...settings } })),
}));
