import type { Contestant, ModelSource, RunCheckpoints } from '../../../workers/engine/api';
import { useCheckpoints } from '../../components/CheckpointChoice';
import { input } from '../../components/ui';
import { bundledModel, CATALOG } from '../../lib/model-catalog';
import { type Adapter, useCompare, useImported } from './compare-store';

/** A model the person may ask: its key among the checkboxes, and the contestant it becomes. */
interface Candidate {
  key: string;
  contestant: Contestant;
}

/** What an evaluation asks: the contestants, the base first; and the other model's source where one answers. */
export interface ContestantPick {
  contestants: Contestant[];
  other: ModelSource | null;
}

/** The choice of models: keys of the picked candidates (null: the Compare step's tuned side), another model. */
export interface ContestantChoice {
  keys: string[] | null;
  /** '' for none, 'bundled', a catalog repo, or 'hub' with `repo` typed. */
  other: string;
  repo: string;
}

export const NO_CONTESTANT_CHOICE: ContestantChoice = { keys: null, other: '', repo: '' };

const BASE: Contestant = { name: 'base', adapter: 'none' };

function keyOf(adapter: Adapter): string {
  return typeof adapter === 'object' ? `${adapter.run}@${adapter.step}` : adapter;
}

/**
 * Every tuned model there is to ask: this run, each kept run's last checkpoint (and the one the Compare step's
 * tuned side chose), the imported adapter.
 */
function candidates(props: {
  hasRun: boolean;
  fullRun: boolean;
  runs: RunCheckpoints[];
  imported: string | null;
  adapter: Adapter;
}): Candidate[] {
  const list: Candidate[] = [];
  if (props.hasRun) {
    list.push({ key: 'run', contestant: { name: props.fullRun ? 'this run (weights)' : 'this run', adapter: 'run' } });
  }
  const { adapter } = props;
  for (const run of props.runs) {
    const when = new Date(run.started).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
    const chosen = typeof adapter === 'object' && adapter.run === run.run ? adapter.step : null;
    const steps = [...new Set([run.steps[run.steps.length - 1], ...(chosen === null ? [] : [chosen])])];
    for (const step of steps) {
      // Two runs started in the same minute: the run's id tells them apart (the report keys its columns by name).
      const base = `${run.method} run of ${when}, step ${step}`;
      const name = list.some((c) => c.contestant.name === base) ? `${base} (${run.run})` : base;
      list.push({ key: `${run.run}@${step}`, contestant: { name, adapter: { run: run.run, step } } });
    }
  }
  if (props.imported) list.push({ key: 'imported', contestant: { name: props.imported, adapter: 'imported' } });
  return list;
}

/** The other model's source and its contestant's name, from the choice; null for none. */
function otherModel(choice: ContestantChoice): { source: ModelSource; name: string } | null {
  if (choice.other === 'bundled') return { source: bundledModel(), name: 'hone-tiny (another copy)' };
  const repo = choice.other === 'hub' ? choice.repo.trim() : choice.other;
  return repo ? { source: { kind: 'hub', repo }, name: `hub:${repo}` } : null;
}

/**
 * The models that answer: the base always (what the others are compared with), any of the tuned ones (the Compare
 * step's tuned side until the person picks), and another model's base from the picker or the Hub.
 */
export function useContestants(
  choice: ContestantChoice,
  props: { hasRun: boolean; fullRun: boolean },
): { pick: ContestantPick; list: Candidate[]; checked: Set<string> } {
  const adapter = useCompare((s) => s.adapter);
  const imported = useImported();
  const runs = useCheckpoints();
  const list = candidates({
    ...props,
    runs,
    imported: imported && `imported ${imported.name}`,
    adapter,
  });
  const fallback = list.some((c) => c.key === keyOf(adapter)) ? [keyOf(adapter)] : [];
  const checked = new Set(choice.keys ?? fallback);
  const other = otherModel(choice);
  const contestants = [
    BASE,
    ...list.filter((c) => checked.has(c.key)).map((c) => c.contestant),
    ...(other ? [{ name: other.name, adapter: 'none' as const, other: true as const }] : []),
  ];
  return { pick: { contestants, other: other?.source ?? null }, list, checked };
}

/** The checkboxes of the tuned models and the other model's choice. */
export function EvalContestants(props: {
  choice: ContestantChoice;
  onChange: (choice: ContestantChoice) => void;
  list: Candidate[];
  checked: Set<string>;
}) {
  const { choice, onChange, list, checked } = props;
  const toggle = (key: string, on: boolean) => {
    const keys = on ? [...checked, key] : [...checked].filter((k) => k !== key);
    onChange({ ...choice, keys });
  };
  return (
    <fieldset className="space-y-1" data-testid="eval-contestants">
      <legend className="text-slate-600 dark:text-slate-300">Models that answer</legend>
      <div className="flex flex-wrap gap-x-4 gap-y-1">
        <label className="flex items-center gap-1">
          <input type="checkbox" checked disabled />
          base (the loaded model, no adapter: the others are compared with it)
        </label>
        {list.map((c) => (
          <label key={c.key} className="flex items-center gap-1">
            <input type="checkbox" checked={checked.has(c.key)} onChange={(e) => toggle(c.key, e.target.checked)} />
            {c.contestant.name}
          </label>
        ))}
      </div>
      <div className="flex flex-wrap items-center gap-2">
        <label className="flex items-center gap-2">
          Another model’s base
          <select
            className={input}
            value={choice.other}
            onChange={(e) => onChange({ ...choice, other: e.target.value })}
          >
            <option value="">none</option>
            <option value="bundled">hone-tiny (the demo model)</option>
            {CATALOG.map((entry) => (
              <option key={entry.repo} value={entry.repo}>
                {entry.name}
              </option>
            ))}
            <option value="hub">a Hub repo…</option>
          </select>
        </label>
        {choice.other === 'hub' && (
          <input
            className={input}
            aria-label="Other model's Hub repo"
            placeholder="org/name"
            value={choice.repo}
            onChange={(e) => onChange({ ...choice, repo: e.target.value })}
          />
        )}
        {choice.other !== '' && (
          <span className="text-slate-500 dark:text-slate-400">
            read for its turn beside the loaded model (downloaded once, with the Hub settings of the Model step)
          </span>
        )}
      </div>
    </fieldset>
  );
}
