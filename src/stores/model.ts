import { create } from 'zustand';
import type { LoadedModelSummary } from '../../workers/engine/api';

/** The model on the GPU, shared by the studio's steps. */
interface ModelState {
  loaded: LoadedModelSummary | null;
  setLoaded: (loaded: LoadedModelSummary | null) => void;
}

export const useModel = create<ModelState>((set) => ({
  loaded: null,
  setLoaded: (loaded) => set({ loaded }),
}));
