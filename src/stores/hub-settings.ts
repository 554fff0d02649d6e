import { create } from 'zustand';
import { createJSONStorage, persist } from 'zustand/middleware';
import { DEFAULT_HUB_URL } from '../../core/hub';

/**
 * Where models are downloaded from, and the access token for gated models. Kept only in this browser
 * (localStorage); the token is sent to the configured Hub and nowhere else.
 */
interface HubSettingsState {
  baseUrl: string;
  token: string;
  setBaseUrl: (baseUrl: string) => void;
  setToken: (token: string) => void;
}

export const useHubSettings = create<HubSettingsState>()(
  persist(
    (set) => ({
      baseUrl: DEFAULT_HUB_URL,
      token: '',
      setBaseUrl: (baseUrl) => set({ baseUrl: baseUrl.trim() || DEFAULT_HUB_URL }),
      setToken: (token) => set({ token: token.trim() }),
    }),
    { name: 'hone-hub-settings', storage: createJSONStorage(() => localStorage) },
  ),
);

/** The settings as the engine takes them. */
export function hubSettings(state: Pick<HubSettingsState, 'baseUrl' | 'token'>) {
  return { baseUrl: state.baseUrl, token: state.token || undefined };
}
