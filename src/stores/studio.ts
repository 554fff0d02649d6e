import { create } from 'zustand';

/** The studio's steps, in the order a person goes through them. */
export const STEPS = [
  { id: 'model', label: 'Model', hint: 'Pick a pretrained model' },
  { id: 'data', label: 'Data', hint: 'Drop a dataset' },
  { id: 'train', label: 'Train', hint: 'Choose a method and train' },
  { id: 'compare', label: 'Compare', hint: 'Chat with base and tuned side by side' },
  { id: 'export', label: 'Export', hint: 'Download the adapter' },
] as const;

export type StepId = (typeof STEPS)[number]['id'];

interface StudioState {
  step: StepId;
  goTo: (step: StepId) => void;
}

export const useStudio = create<StudioState>((set) => ({
  step: 'model',
  goTo: (step) => set({ step }),
}));
