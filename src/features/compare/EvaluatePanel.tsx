import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useState } from 'react';
import { answerKind, formatScore, METRICS, type MetricName, metricsFor } from '../../../core/eval/metrics';
import type { EvalProgress, EvalReport } from '../../../workers/engine/api';
import { button, card, ErrorMessage, input } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { getEngine } from '../../lib/engine';
import { formatSeconds } from '../../lib/format';
import { useDataset } from '../../stores/dataset';
import { useCompare } from './compare-store';
import { EvalTable } from './EvalTable';

/**
 * Evaluate: the base and the tuned model (the Compare step's adapter) answer every held-out example with the
 * Compare step's decoding settings and seed; the summary (means with 95% bootstrap intervals, wins / ties / losses)
 * and every example's answers and scores, kept with the run.
 */
export function EvaluatePanel({ canTune }: { canTune: boolean }) {
  const summary = useDataset((s) => s.summary);
  const { settings, adapter } = useCompare();
  const queryClient = useQueryClient();
  // The person's choice of metrics; until they make one, the metrics that fit the examples' references.
  const [chosen, setMetrics] = useState<MetricName[] | null>(null);
  const [progress, setProgress] = useState<EvalProgress | null>(null);
  /** A JavaScript rule scoring each answer too (GRPO's sandboxed worker); empty for none. */
  const [rule, setRule] = useState('');
  const heldOut = useQuery({
    queryKey: ['held-out-examples', summary],
    enabled: summary !== null,
    queryFn: () => getDataWorker().heldOutExamples(),
  });
  const [picked, setPicked] = useState<File[]>([]);
  const fromFiles = useQuery({
    queryKey: ['eval-file-examples', picked],
    enabled: picked.length > 0,
    queryFn: () => getDataWorker().examplesFrom(picked.map((file) => ({ name: file.name, blob: file }))),
  });
  const source = picked.length > 0 ? fromFiles : heldOut;
  const kept = useQuery({ queryKey: ['kept-evaluation'], queryFn: () => getEngine().keptEvaluation() });
  const count = source.data?.examples.length ?? 0;
  const fitting = metricsFor(answerKind(source.data?.examples.map((e) => e.reference) ?? [])).map((m) => m.name);
  const metrics = chosen ?? fitting;
  const run = useMutation({
    mutationFn: async (): Promise<EvalReport> => {
      const examples = source.data?.examples ?? [];
      setProgress(null);
      const { maxNewTokens, seed, system: _, stop: __, ...sampling } = settings;
      return getEngine().evaluate(
        {
          examples,
          contestants: [
            { name: 'base', adapter: 'none' },
            { name: 'tuned', adapter },
          ],
          metrics,
          rule: rule.trim() ? rule : undefined,
          sampling,
          maxNewTokens,
          seed,
        },
        Comlink.proxy(setProgress),
      );
    },
    onSuccess: (report) => queryClient.setQueryData(['kept-evaluation'], report),
  });
  const report = run.data ?? kept.data ?? null;
  return (
    <section className={`${card} space-y-3 text-sm`} data-testid="evaluate" aria-labelledby="evaluate-heading">
      <h2 id="evaluate-heading" className="font-semibold">
        Evaluate: both models on many examples, scored
      </h2>
      <p className="text-slate-600 dark:text-slate-300" data-testid="eval-examples">
        {picked.length > 0
          ? `${count} examples from ${picked.map((f) => f.name).join(', ')}`
          : summary === null
            ? 'Drop a dataset in the Data step (its held-out split is answered here), or pick a file'
            : `The ${count} held-out examples of the dataset`}
        {source.data && source.data.skipped > 0 && ` (${source.data.skipped} records with nothing to answer left out)`}.
        Both models answer with the sampling settings above; each answer is scored against the example's own.
      </p>
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">
          Or examples from a file (JSONL, JSON, CSV, Parquet: prompts and reference answers)
        </span>
        <input type="file" multiple onChange={(e) => setPicked([...(e.target.files ?? [])])} />
      </label>
      {fromFiles.isError && <ErrorMessage error={fromFiles.error} />}
      {picked.length > 0 && fromFiles.data && fromFiles.data.issues.length > 0 && (
        <ErrorMessage
          error={`Records skipped: ${fromFiles.data.issues
            .slice(0, 5)
            .map((i) => `${i.file}:${i.line}: ${i.reason}`)
            .join('; ')}`}
        />
      )}
      <fieldset className="flex flex-wrap gap-4">
        <legend className="sr-only">Metrics</legend>
        {Object.values(METRICS).map((m) => (
          <label key={m.name} className="flex items-center gap-1" title={m.description}>
            <input
              type="checkbox"
              checked={metrics.includes(m.name)}
              onChange={(e) =>
                setMetrics(e.target.checked ? [...metrics, m.name] : metrics.filter((x) => x !== m.name))
              }
            />
            {m.label}
          </label>
        ))}
      </fieldset>
      <details>
        <summary className="cursor-pointer">A JavaScript rule to score the answers too (optional)</summary>
        <textarea
          className={`${input} mt-1 h-20 w-full font-mono text-xs`}
          aria-label="Scoring rule"
          value={rule}
          placeholder="(prompt, completion, reference) => (completion.includes(reference) ? 1 : 0)"
          onChange={(e) => setRule(e.target.value)}
        />
      </details>
      <div className="flex flex-wrap items-center gap-3">
        <button
          type="button"
          className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
          disabled={run.isPending || count === 0 || (metrics.length === 0 && !rule.trim()) || !canTune}
          onClick={() => run.mutate()}
        >
          Evaluate
        </button>
        <button
          type="button"
          className={`${button} border border-slate-300`}
          disabled={!run.isPending}
          onClick={() => getEngine().stopEvaluating()}
        >
          Stop
        </button>
        {run.isPending && progress && (
          <span data-testid="eval-progress">
            {progress.done} of {progress.total} answers
            {progress.secondsLeft !== null && `, about ${formatSeconds(progress.secondsLeft)} left`}
          </span>
        )}
        {!canTune && <span>Train a model, or import an adapter, to evaluate it against the base.</span>}
      </div>
      {run.isError && <ErrorMessage error={run.error} />}
      {report && <EvalSummary report={report} />}
      {report && <EvalTable report={report} />}
    </section>
  );
}

/** Each model's mean per metric with its interval, as bars; then the tuned model against the base. */
function EvalSummary({ report }: { report: EvalReport }) {
  return (
    <div data-testid="eval-summary" className="space-y-2">
      <table className="w-full text-left">
        <thead>
          <tr>
            <th className="font-medium">Metric</th>
            {report.contestants.map((c) => (
              <th key={c.name} className="font-medium">
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {report.metrics.map((metric) => (
            <tr key={metric}>
              <td>{METRICS[metric as MetricName]?.label ?? metric}</td>
              {report.contestants.map((c) => {
                const s = report.summary.find((x) => x.contestant === c.name && x.metric === metric);
                // A rule has no fixed scale: its bars share the largest mean's.
                const max =
                  METRICS[metric as MetricName]?.max ??
                  Math.max(...report.summary.filter((x) => x.metric === metric).map((x) => Math.abs(x.mean)), 1e-9);
                return (
                  <td key={c.name}>
                    {s && (
                      <div>
                        <span>
                          {formatScore(metric, s.mean)}{' '}
                          <span className="text-slate-500 dark:text-slate-400">
                            [{formatScore(metric, s.low)}, {formatScore(metric, s.high)}]
                          </span>
                        </span>
                        <div className="relative h-2 w-32 rounded bg-slate-200 dark:bg-slate-700" aria-hidden="true">
                          <div
                            className="absolute h-2 rounded bg-indigo-500"
                            style={{ width: `${Math.min(100, (100 * Math.max(0, s.mean)) / max)}%` }}
                          />
                        </div>
                      </div>
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <ul>
        {report.versus.map((v) => (
          <li key={`${v.contestant}-${v.metric}`}>
            {v.contestant} against {v.against}, {METRICS[v.metric as MetricName]?.label ?? v.metric}: {v.wins} better,{' '}
            {v.ties} the same, {v.losses} worse; difference {formatScore(v.metric, v.difference.mean)} [
            {formatScore(v.metric, v.difference.low)}, {formatScore(v.metric, v.difference.high)}]
          </li>
        ))}
      </ul>
    </div>
  );
}
