import { useState } from 'react';
import { useHubSettings } from '../stores/hub-settings';
import { card, input } from './ui';

/**
 * Where models come from and go to: the Hub's URL and the access token (gated models; publishing). Opened to begin
 * with when `startOpen`; after that, as the person leaves it.
 */
export function HubSettingsPanel({ startOpen = false }: { startOpen?: boolean }) {
  const { baseUrl, token, setBaseUrl, setToken } = useHubSettings();
  const [open, setOpen] = useState(startOpen);
  return (
    <details className={card} open={open} onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary className="cursor-pointer text-sm font-semibold">Hub settings</summary>
      <div className="mt-2 space-y-2 text-sm">
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">Hub URL (a mirror works too)</span>
          <input defaultValue={baseUrl} onBlur={(e) => setBaseUrl(e.target.value)} className={input} />
        </label>
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">
            Access token (for gated models; with write permission, to publish)
          </span>
          <input
            type="password"
            defaultValue={token}
            onBlur={(e) => setToken(e.target.value)}
            autoComplete="off"
            className={input}
          />
        </label>
        <p className="text-slate-500 dark:text-slate-400">
          Kept only in this browser, and sent only to the Hub URL above.
        </p>
      </div>
    </details>
  );
}
