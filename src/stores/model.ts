import { create } from 'zustand';
import type { LoadedModelSummary, ModelSource } from '../../workers/engine/api';

/** The model on the GPU, and where it came from (the data step reads its tokenizer), shared by the studio's steps. */
interface ModelState {
  loaded: LoadedModelSummary | null;
  source: ModelSource | null;
  setLoaded: (loaded: LoadedModelSummary, source: ModelSource) => void;
}

export const useModel = create<ModelState>((set) => ({
  loaded: null,
  source: null,
  setLoaded: (loaded, source) => set({ loaded, source }),
}));
