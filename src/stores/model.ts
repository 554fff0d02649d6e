import { create } from 'zustand';
import type { LoadedModelSummary, ModelSource } from '../../workers/engine/api';

/** The model on the GPU, and where it came from (the data step reads its tokenizer), shared by the studio's steps. */
interface ModelState {
  loaded: LoadedModelSummary | null;
  source: ModelSource | null;
  /** Why the GPU device was lost, taking the loaded model with it; null once a model is loaded again. */
  lost: string | null;
  setLoaded: (loaded: LoadedModelSummary, source: ModelSource) => void;
  markLost: (reason: string) => void;
}

export const useModel = create<ModelState>((set) => ({
  loaded: null,
  source: null,
  lost: null,
  setLoaded: (loaded, source) => set({ loaded, source, lost: null }),
  markLost: (reason) => set({ loaded: null, lost: reason }),
}));
