import { create } from 'zustand';
import type { DownloadProgress } from '../../workers/engine/api';

/** What putting the last session back is doing (src/app/session.ts), for the banner and the resume offer. */
interface RestoreState {
  status: 'idle' | 'loading-model' | 'failed' | 'done';
  /** The model being loaded again. */
  model: string | null;
  progress: DownloadProgress | null;
  message: string | null;
}

export const useRestore = create<RestoreState>(() => ({ status: 'idle', model: null, progress: null, message: null }));
