import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useState } from 'react';
import { defaultScores } from '../../../core/eval/examples';
import { formatScore, MEASURES, METRICS, type MetricName, scoreInfo } from '../../../core/eval/metrics';
import type { DownloadProgress, EvalProgress, EvalReport, RewardChoice } from '../../../workers/engine/api';
import { RewardPicker } from '../../components/RewardPicker';
import { button, card, ErrorMessage, input } from '../../components/ui';
import { getDataWorker } from '../../lib/data';
import { getEngine } from '../../lib/engine';
import { formatBytes, formatSeconds } from '../../lib/format';
import { useDataset } from '../../stores/dataset';
import { hubSettings, useHubSettings } from '../../stores/hub-settings';
import { useCompare } from './compare-store';
import { EvalChart } from './EvalChart';
import { type ContestantChoice, EvalContestants, NO_CONTESTANT_CHOICE, useContestants } from './EvalContestants';
import { EvalTable } from './EvalTable';

/**
 * Evaluate: the base model and the models the person picks (this run, kept checkpoints, an imported adapter,
 * another model's base) answer every held-out example with the Compare step's decoding settings and seed, several
 * at once; the summary (means with 95% bootstrap intervals, as a table and charts; wins / ties / losses against the
 * base) and every example's answers and scores, kept with the run.
 */
export function EvaluatePanel(props: { hasRun: boolean; fullRun: boolean }) {
  const summary = useDataset((s) => s.summary);
  const { settings } = useCompare();
  const queryClient = useQueryClient();
  // The person's choice of scores; until they make one, the ones that fit the examples.
  const [chosen, setMetrics] = useState<MetricName[] | null>(null);
  const [perplexityChosen, setPerplexity] = useState<boolean | null>(null);
  const [progress, setProgress] = useState<EvalProgress | null>(null);
  /** The other model's download, while it is read for its turn. */
  const [download, setDownload] = useState<DownloadProgress | null>(null);
  /** A JavaScript rule scoring each answer too (GRPO's sandboxed worker); empty for none. */
  const [rule, setRule] = useState('');
  const [reward, setReward] = useState<RewardChoice | null>(null);
  const [choice, setChoice] = useState<ContestantChoice>(NO_CONTESTANT_CHOICE);
  const { pick, list, checked } = useContestants(choice, props);
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
  const examples = source.data?.examples ?? [];
  const count = examples.length;
  const fitting = defaultScores(examples);
  const metrics = chosen ?? fitting.metrics;
  const perplexity = perplexityChosen ?? fitting.perplexity;
  const run = useMutation({
    mutationFn: async (): Promise<EvalReport> => {
      setProgress(null);
      setDownload(null);
      const { maxNewTokens, seed, system: _, stop: __, ...sampling } = settings;
      const hub = hubSettings(useHubSettings.getState());
      const other = pick.other && { source: pick.other, hub };
      return getEngine().evaluate(
        {
          examples,
          contestants: pick.contestants,
          metrics,
          perplexity,
          rule: rule.trim() ? rule : undefined,
          reward: reward ?? undefined,
          sampling,
          maxNewTokens,
          seed,
        },
        Comlink.proxy(setProgress),
        other ?? undefined,
        Comlink.proxy(setDownload),
      );
    },
    onSuccess: (report) => queryClient.setQueryData(['kept-evaluation'], report),
  });
  const report = run.data ?? kept.data ?? null;
  const scores = metrics.length + (perplexity ? 1 : 0) + (rule.trim() ? 1 : 0) + (reward ? 1 : 0);
  return (
    <section className={`${card} space-y-3 text-sm`} data-testid="evaluate" aria-labelledby="evaluate-heading">
      <h2 id="evaluate-heading" className="font-semibold">
        Evaluate: the models on many examples, scored
      </h2>
      <p className="text-slate-600 dark:text-slate-300" data-testid="eval-examples">
        {picked.length > 0
          ? `${count} examples from ${picked.map((f) => f.name).join(', ')}`
          : summary === null
            ? 'Drop a dataset in the Data step (its held-out split is answered here), or pick a file'
            : `The ${count} held-out examples of the dataset`}
        {source.data && source.data.skipped > 0 && ` (${source.data.skipped} records with nothing to answer left out)`}.
        Every model answers with the sampling settings above; each answer is scored against the example's own.
      </p>
      <label className="flex flex-col">
        <span className="text-slate-600 dark:text-slate-300">
          Or examples from a file (JSONL, JSON, CSV, Parquet: prompts and reference answers, or raw text)
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
      <EvalContestants choice={choice} onChange={setChoice} list={list} checked={checked} />
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
        <label className="flex items-center gap-1" title={MEASURES.perplexity.description}>
          <input type="checkbox" checked={perplexity} onChange={(e) => setPerplexity(e.target.checked)} />
          {MEASURES.perplexity.label}
        </label>
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
      <details>
        <summary className="cursor-pointer">A reward model to score the answers too (optional)</summary>
        <p className="text-slate-600 dark:text-slate-300">{MEASURES.reward.description}</p>
        <RewardPicker reward={reward} onChange={setReward} disabled={run.isPending} modelsOnly />
      </details>
      <div className="flex flex-wrap items-center gap-3">
        <button
          type="button"
          className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
          disabled={run.isPending || count === 0 || scores === 0}
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
            {progress.done} of {progress.total} done
            {progress.secondsLeft !== null && `, about ${formatSeconds(progress.secondsLeft)} left`}
          </span>
        )}
        {run.isPending && download && download.receivedBytes !== download.totalBytes && (
          <span data-testid="eval-download">
            Downloading the other model: {download.file}, {formatBytes(download.receivedBytes)}
            {download.totalBytes !== null && ` of ${formatBytes(download.totalBytes)}`}
          </span>
        )}
        {pick.contestants.length === 1 && (
          <span>Only the base model answers: pick a tuned model or another model to compare it with.</span>
        )}
      </div>
      {run.isError && <ErrorMessage error={run.error} />}
      {report && <EvalSummary report={report} />}
      {report && <EvalChart report={report} />}
      {report && <EvalTable report={report} />}
    </section>
  );
}

/** Each model's mean per metric with its interval; then each model against the base. */
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
              <td>{scoreInfo(metric).label}</td>
              {report.contestants.map((c) => {
                const s = report.summary.find((x) => x.contestant === c.name && x.metric === metric);
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
            {v.contestant} against {v.against}, {scoreInfo(v.metric).label}: {v.wins} better, {v.ties} the same,{' '}
            {v.losses} worse; difference {formatScore(v.metric, v.difference.mean)} [
            {formatScore(v.metric, v.difference.low)}, {formatScore(v.metric, v.difference.high)}]
          </li>
        ))}
      </ul>
    </div>
  );
}
