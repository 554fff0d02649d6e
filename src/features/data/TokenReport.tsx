import { useQuery } from '@tanstack/react-query';
import type { LengthStats } from '../../../core/dataset/batches';
import type { DatasetSummary, PreviewRecord, TokenSettings } from '../../../workers/data/api';
import { card, ErrorMessage, input } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { plural } from '../../lib/format';
import { useDataset } from '../../stores/dataset';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { useModel } from '../../stores/model';

/** Tokens that carry loss, marked (the dark theme needs its own text color: a mark's default is black). */
const lossMark = 'rounded bg-emerald-100 dark:bg-emerald-900 dark:text-emerald-50';

const PREVIEW_RECORDS = 3;

/**
 * The dataset as the loaded model will read it: the max length, prompt loss and validation split settings, the
 * token-length histogram with what the max length would cut, and the first records with their loss tokens marked.
 */
export function TokenReport({ summary }: { summary: DatasetSummary }) {
  const source = useModel((s) => s.source);
  const hub = hubSettings(useHubSettings());
  const { settings, setSettings } = useDataset();
  const tokens = useQuery({
    enabled: source !== null,
    queryKey: ['tokenize', summary, source?.kind === 'files' ? source.name : source, hub, settings],
    queryFn: () => getDataWorker().tokenize(source as NonNullable<typeof source>, hub, settings, PREVIEW_RECORDS),
  });
  return (
    <div className={card} data-testid="token-report">
      <h2 className="font-semibold">As the model reads it</h2>
      <SettingsForm settings={settings} onChange={setSettings} isText={summary.format === 'text'} />
      {source === null && (
        <p className="mt-2 text-sm text-slate-600 dark:text-slate-300">
          Load a model in the Model step to see the records through its tokenizer and chat template.
        </p>
      )}
      {tokens.isPending && source !== null && <p className="mt-2 text-sm text-slate-600">Tokenizing…</p>}
      {tokens.isError && <ErrorMessage error={tokens.error} />}
      {tokens.data && (
        <>
          <p className="mt-3 text-sm" data-testid="token-summary">
            {tokens.data.model}
            {!tokens.data.hasChatTemplate &&
              summary.format !== 'text' &&
              ' has no chat template, so Hone’s plain one is used'}
            : {plural(tokens.data.train, 'record')} to train on, {tokens.data.validation.toLocaleString()} held out for
            validation; {plural(tokens.data.lossTokens, 'token')} carry loss.{' '}
            {tokens.data.packedBlocks !== null
              ? `The text packs into ${tokens.data.packedBlocks.toLocaleString()} blocks of ${settings.maxLength} tokens.`
              : `${tokens.data.stats.truncated.toLocaleString()} of ${tokens.data.stats.count.toLocaleString()} sequences are longer than ${settings.maxLength} tokens and would be cut.`}
          </p>
          {tokens.data.refused.length > 0 && (
            <ErrorMessage
              error={`${tokens.data.refused.length} records the chat template refuses, for example ${tokens.data.refused[0].file}:${tokens.data.refused[0].line}: ${tokens.data.refused[0].reason}`}
            />
          )}
          <Histogram stats={tokens.data.stats} maxLength={settings.maxLength} />
          <h3 className="mt-4 text-sm font-semibold">
            The first records, <mark className={`${lossMark} px-1`}>tokens with loss</mark> marked
          </h3>
          {tokens.data.previews.map((p) => (
            <Preview key={`${p.file}:${p.line}`} record={p} />
          ))}
        </>
      )}
    </div>
  );
}

function SettingsForm(props: {
  settings: TokenSettings;
  onChange: (s: Partial<TokenSettings>) => void;
  isText: boolean;
}) {
  const { settings, onChange } = props;
  const whole = (value: string, min: number) => {
    const n = Number(value);
    return Number.isInteger(n) && n >= min ? n : null;
  };
  return (
    <div className="mt-2 flex flex-wrap items-end gap-3 text-sm">
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">
          {props.isText ? 'Block length' : 'Max length'} (tokens)
        </span>
        <input
          className={`${input} w-28`}
          type="number"
          min={2}
          defaultValue={settings.maxLength}
          onBlur={(e) => {
            const n = whole(e.target.value, 2);
            if (n !== null) onChange({ maxLength: n });
          }}
        />
      </label>
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">Validation (fraction or count)</span>
        <input
          className={`${input} w-28`}
          type="number"
          min={0}
          step="any"
          defaultValue={settings.validation}
          onBlur={(e) => {
            const n = Number(e.target.value);
            if (n >= 0) onChange({ validation: n });
          }}
        />
      </label>
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">Split seed</span>
        <input
          className={`${input} w-24`}
          type="number"
          defaultValue={settings.seed}
          onBlur={(e) => {
            const n = whole(e.target.value, 0);
            if (n !== null) onChange({ seed: n });
          }}
        />
      </label>
      {!props.isText && (
        <label className="flex items-center gap-2">
          <input
            type="checkbox"
            checked={settings.trainOnPrompt}
            onChange={(e) => onChange({ trainOnPrompt: e.target.checked })}
          />
          Train on the prompts too
        </label>
      )}
    </div>
  );
}

function Histogram({ stats, maxLength }: { stats: LengthStats; maxLength: number }) {
  const tallest = Math.max(1, ...stats.histogram.map((b) => b.count));
  return (
    <figure className="mt-3" data-testid="length-histogram">
      <div className="flex h-24 items-end gap-px border-b border-slate-300" role="img" aria-label="Token lengths">
        {stats.histogram.map((b) => (
          <div
            key={b.from}
            title={`${b.from}–${b.to} tokens: ${b.count}`}
            style={{ height: `${(100 * b.count) / tallest}%` }}
            className={`min-h-px flex-1 ${b.from > maxLength ? 'bg-amber-500' : 'bg-indigo-500'}`}
          />
        ))}
      </div>
      <figcaption className="mt-1 text-xs text-slate-500 dark:text-slate-400">
        Tokens per sequence: min {stats.min}, median {stats.median}, p95 {stats.p95}, max {stats.max}
        {stats.max > maxLength && ' (amber: past the max length)'}
      </figcaption>
    </figure>
  );
}

function Preview({ record }: { record: PreviewRecord }) {
  return (
    <article className="mt-2 rounded border border-slate-200 p-2 dark:border-slate-700" data-testid="record-preview">
      <p className="text-xs text-slate-500 dark:text-slate-400">
        {record.file}:{record.line}
      </p>
      {record.sequences.map((s) => (
        <div key={s.label} className="mt-1">
          {record.sequences.length > 1 && (
            <p className="text-xs font-semibold text-slate-500 dark:text-slate-400">{s.label}</p>
          )}
          <pre className="whitespace-pre-wrap break-words font-mono text-xs">
            {s.segments.map((seg, i) =>
              seg.loss ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: segments are a fixed rendering, never reordered.
                <mark key={i} className={lossMark} data-loss="true">
                  {seg.text}
                </mark>
              ) : (
                // biome-ignore lint/suspicious/noArrayIndexKey: as above.
                <span key={i}>{seg.text}</span>
              ),
            )}
          </pre>
          <p className="text-xs text-slate-500 dark:text-slate-400">
            {s.tokens} tokens{s.cut > 0 && `, the last ${s.cut} cut at the max length`}
          </p>
        </div>
      ))}
    </article>
  );
}
