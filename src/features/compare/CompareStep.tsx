import { useMutation, useQuery } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useState } from 'react';
import { CheckpointChoice } from '../../components/CheckpointChoice';
import { FolderOrZip } from '../../components/FolderOrZip';
import { NextStep } from '../../components/NextStep';
import { button, card, ErrorMessage, input, Step } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { getEngine } from '../../lib/engine';
import { filesFromInput } from '../../lib/picked-files';
import { useDataset } from '../../stores/dataset';
import { useModel } from '../../stores/model';
import { useTraining } from '../../stores/training';
import { type Adapter, type CompareSettings, type Side, type Turn, useCompare, useImported } from './compare-store';
import { EvaluatePanel } from './EvaluatePanel';

const SIDES: Side[] = ['base', 'tuned'];

/** A side's heading: a run that trained every weight is compared by switching weights, not an adapter. */
function sideTitle(side: Side, fullRun: boolean): string {
  if (side === 'base') return fullRun ? 'Base model (as loaded)' : 'Base model (adapter off)';
  return fullRun ? 'Tuned model (the run’s weights)' : 'Tuned model (adapter on)';
}

/** The Compare step: one prompt, two answers streamed side by side from the same weights, adapter off and on. */
export function CompareStep() {
  const loaded = useModel((s) => s.loaded);
  const status = useTraining((s) => s.status);
  const c = useCompare();
  const [draft, setDraft] = useState('');
  const [reference, setReference] = useState<string | null>(null);
  const summary = useDataset((s) => s.summary);
  const heldOut = useQuery({
    queryKey: ['validation-prompts', summary],
    enabled: summary !== null,
    queryFn: () => getDataWorker().validationPrompts(20),
  });
  const [busy, setBusy] = useState(false);
  const hasRun = status === 'finished' || status === 'stopped' || status === 'paused';
  const fullRun = useTraining((s) => s.prepared?.full ?? false);
  const comparesFullRun = fullRun && c.adapter === 'run';

  const send = async () => {
    const user = draft.trim();
    if (!user || busy) return;
    setDraft('');
    c.addTurn(user, reference);
    setReference(null);
    setBusy(true);
    const history = useCompare.getState().turns;
    const { settings } = useCompare.getState();
    await Promise.all(SIDES.map((side) => answer(side, history, settings, c.adapter)));
    setBusy(false);
  };

  return (
    <Step
      id="compare"
      title="Compare"
      summary="One prompt, two answers: the base model and the tuned model, both on your GPU, with the same seed; then both scored on the held-out examples."
    >
      {!loaded ? (
        <p className="text-sm text-slate-600 dark:text-slate-300">Load a model in the Model step first.</p>
      ) : (
        <>
          <AdapterChoice hasRun={hasRun} fullRun={fullRun} />
          <SettingsRow />
          <div className="grid gap-4 md:grid-cols-2">
            {c.turns.some((t) => t.reference !== null) && (
              <div className={`${card} md:col-span-2`} data-testid="references">
                <h2 className="font-semibold">The dataset’s answers</h2>
                <ol className="mt-1 list-decimal pl-5 text-sm">
                  {c.turns.map((t, i) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: turns are only ever appended.
                    <li key={i}>{t.reference ?? '—'}</li>
                  ))}
                </ol>
              </div>
            )}
            {SIDES.map((side) => (
              <Conversation key={side} side={side} title={sideTitle(side, comparesFullRun)} turns={c.turns} />
            ))}
          </div>
          {heldOut.data && heldOut.data.length > 0 && (
            <label className="flex flex-col text-sm">
              <span className="text-slate-600 dark:text-slate-300">Or a held-out prompt from the validation split</span>
              <select
                className={input}
                value=""
                onChange={(e) => {
                  const chosen = heldOut.data[Number(e.target.value)];
                  if (!chosen) return;
                  setDraft(chosen.prompt);
                  setReference(chosen.reference);
                }}
              >
                <option value="">choose one</option>
                {heldOut.data.map((p, i) => (
                  <option key={p.id} value={i}>
                    {p.id}: {p.prompt.slice(0, 80)}
                  </option>
                ))}
              </select>
            </label>
          )}
          <form
            className="flex gap-2"
            onSubmit={(e) => {
              e.preventDefault();
              void send();
            }}
          >
            <input
              className={`${input} grow`}
              value={draft}
              onChange={(e) => {
                setDraft(e.target.value);
                setReference(null);
              }}
              placeholder="Ask both models something"
              aria-label="Prompt"
            />
            <button type="submit" disabled={busy || !draft.trim()} className={`${button} bg-indigo-600 text-white`}>
              Send
            </button>
            <button
              type="button"
              disabled={!busy}
              className={`${button} border border-slate-300`}
              onClick={() => getEngine().stopGenerating()}
            >
              Stop
            </button>
            <button
              type="button"
              disabled={busy || c.turns.length === 0}
              className={`${button} border border-slate-300`}
              onClick={c.clear}
            >
              New conversation
            </button>
          </form>
          <EvaluatePanel hasRun={hasRun} fullRun={fullRun} />
          {c.turns.length > 0 && <NextStep to="export" what="take the tuned model with you" />}
        </>
      )}
    </Step>
  );
}

/** Streams one side's answer to the last turn, with that side's own earlier answers as the history. */
async function answer(side: Side, turns: Turn[], settings: CompareSettings, adapter: Adapter) {
  const { update } = useCompare.getState();
  const messages = [
    ...(settings.system.trim() ? [{ role: 'system', content: settings.system }] : []),
    ...turns.flatMap((t, i) =>
      i < turns.length - 1
        ? [
            { role: 'user', content: t.user },
            { role: 'assistant', content: t.answers[side].text },
          ]
        : [{ role: 'user', content: t.user }],
    ),
  ];
  try {
    const result = await getEngine().generate(
      {
        prompt: { messages },
        adapter: side === 'base' ? 'none' : adapter,
        sampling: settings,
        maxNewTokens: settings.maxNewTokens,
        seed: settings.seed,
        stopStrings: settings.stop.split('\n').filter((line) => line !== ''),
      },
      Comlink.proxy((text: string) => update(side, { text })),
    );
    update(side, { text: result.text, result });
  } catch (error) {
    update(side, { error: (error as Error).message });
  }
}

function AdapterChoice({ hasRun, fullRun }: { hasRun: boolean; fullRun: boolean }) {
  const { adapter, setAdapter, setImported } = useCompare();
  const imported = useImported();
  const model = useModel((s) => s.loaded?.label ?? '');
  const importAdapter = useMutation({
    mutationFn: async (list: FileList) => {
      const picked = filesFromInput(list);
      return getEngine().importAdapter(picked.name, picked.files);
    },
    onSuccess: (summary) => setImported(summary, model),
  });
  return (
    <fieldset className={`${card} text-sm`} data-testid="adapter-choice">
      <legend className="sr-only">Adapter for the tuned side</legend>
      <div className="flex flex-wrap items-center gap-4">
        <label className="flex items-center gap-2">
          <input type="radio" checked={adapter === 'run'} onChange={() => setAdapter('run')} />
          {fullRun ? 'This run’s weights' : 'This run’s adapter'}
          {!hasRun && ' (train one first)'}
        </label>
        <CheckpointChoice chosen={typeof adapter === 'object' ? adapter : null} onChoose={setAdapter} />
        <label className="flex items-center gap-2">
          <input
            type="radio"
            checked={adapter === 'imported'}
            disabled={!imported}
            onChange={() => setAdapter('imported')}
          />
          {imported
            ? `Imported: ${imported.name} (rank ${imported.r}, ${imported.modules} modules)`
            : 'An imported adapter'}
        </label>
        <FolderOrZip
          folderText="import a PEFT adapter folder"
          zipLabel="import a zipped PEFT adapter"
          onFiles={(list) => importAdapter.mutate(list)}
        />
      </div>
      {importAdapter.isError && <ErrorMessage error={importAdapter.error} />}
    </fieldset>
  );
}

function SettingsRow() {
  const { settings, setSettings } = useCompare();
  const number = (label: string, key: keyof Omit<CompareSettings, 'system' | 'stop'>, step = 'any') => (
    <label className="flex flex-col">
      <span className="text-slate-600 dark:text-slate-300">{label}</span>
      <input
        className={`${input} w-24`}
        type="number"
        step={step}
        defaultValue={settings[key]}
        onBlur={(e) => {
          const n = Number(e.target.value);
          if (e.target.value !== '' && Number.isFinite(n)) setSettings({ [key]: n });
        }}
      />
    </label>
  );
  return (
    <details className={`${card} text-sm`}>
      <summary className="cursor-pointer font-semibold">Decoding settings</summary>
      <div className="mt-2 flex flex-wrap items-start gap-3">
        {number('Temperature', 'temperature')}
        {number('Top-k', 'topK', '1')}
        {number('Top-p', 'topP')}
        {number('Repetition penalty', 'repetitionPenalty')}
        {number('Max new tokens', 'maxNewTokens', '1')}
        {number('Seed', 'seed', '1')}
        <label className="flex grow flex-col">
          <span className="text-slate-600 dark:text-slate-300">System prompt</span>
          <input
            className={input}
            defaultValue={settings.system}
            onBlur={(e) => setSettings({ system: e.target.value })}
          />
        </label>
        <label className="flex flex-col">
          <span className="text-slate-600 dark:text-slate-300">Stop strings (one per line)</span>
          <textarea
            className={`${input} h-16 w-48 font-mono text-xs`}
            defaultValue={settings.stop}
            onBlur={(e) => setSettings({ stop: e.target.value })}
          />
        </label>
      </div>
    </details>
  );
}

function Conversation({ side, title, turns }: { side: Side; title: string; turns: Turn[] }) {
  return (
    <div className={card} data-testid={`conversation-${side}`}>
      <h2 className="font-semibold">{title}</h2>
      <ol className="mt-2 space-y-3 text-sm">
        {turns.map((t, i) => {
          const a = t.answers[side];
          return (
            // biome-ignore lint/suspicious/noArrayIndexKey: turns are only ever appended.
            <li key={i}>
              <p className="rounded bg-slate-100 px-2 py-1 dark:bg-slate-800">{t.user}</p>
              <p className="mt-1 whitespace-pre-wrap px-2" data-testid={`answer-${side}`}>
                {a.text}
              </p>
              {a.result && (
                <p className="px-2 text-xs text-slate-500 dark:text-slate-400">
                  {a.result.ids.length} tokens, {a.result.tokensPerSecond.toFixed(1)} tokens/s
                  {a.result.stoppedBy === 'length' && ', cut at the max new tokens'}
                  {a.result.stoppedBy === 'cancelled' && ', stopped'}
                </p>
              )}
              {a.error && <ErrorMessage error={a.error} />}
            </li>
          );
        })}
      </ol>
    </div>
  );
}
