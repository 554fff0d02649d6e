import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { RunListing } from '../../../workers/engine/api';
import { card } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { useTraining } from '../../stores/training';
import { MetricChart, type Series } from './MetricChart';

const COLORS = ['#4f46e5', '#d97706', '#059669', '#be123c'];
/** Runs whose curves can be overlaid at once, so the chart stays readable. */
const MOST_COMPARED = 4;

const trainSteps = (run: RunListing) => run.metrics.flatMap((m) => (m.type === 'train' ? [m] : []));

/** The settings people vary between runs, in a few words. */
function settingsSummary(s: RunListing['settings']): string {
  return `lr ${s.lr}, ${s.full ? 'every weight' : `rank ${s.loraR}`}, batch ${s.batchSize}×${s.gradAccum}`;
}

function runLabel(run: RunListing): string {
  return `${run.settings.method.toUpperCase()} ${new Date(run.started).toLocaleTimeString()}`;
}

/** Every kept run, listed with its data and results; ticked runs' loss curves drawn over each other. */
export function RunsList() {
  const status = useTraining((s) => s.status);
  const runs = useQuery({ queryKey: ['runs'], queryFn: () => getEngine().listRuns() });
  const { refetch } = runs;
  // A run that ends or pauses changes the list.
  useEffect(() => {
    if (status !== 'running' && status !== 'preparing') void refetch();
  }, [status, refetch]);
  const [compared, setCompared] = useState<string[]>([]);
  const list = runs.data ?? [];
  if (list.length === 0) return null;
  const shown = list.filter((run) => compared.includes(run.id));
  const x = [...new Set(shown.flatMap((run) => trainSteps(run).map((m) => m.step)))].sort((a, b) => a - b);
  const series: Series[] = shown.map((run, i) => {
    const loss = new Map(trainSteps(run).map((m) => [m.step, m.loss]));
    return { label: runLabel(run), color: COLORS[i % COLORS.length], values: x.map((step) => loss.get(step) ?? null) };
  });
  return (
    <div className={`${card} text-sm`} data-testid="runs-list">
      <h2 className="font-medium">Runs</h2>
      <p className="text-slate-600 dark:text-slate-300">
        Every run is kept in this browser (the newest twenty). Tick runs to draw their training loss together.
      </p>
      <table className="mt-2 w-full text-left [&_td]:pr-3 [&_td]:align-top [&_th]:pr-3">
        <thead className="text-slate-500 dark:text-slate-400">
          <tr>
            <th className="font-normal">Compare</th>
            <th className="font-normal">Started</th>
            <th className="font-normal">Method</th>
            <th className="font-normal">Settings</th>
            <th className="font-normal">Model</th>
            <th className="font-normal">Data</th>
            <th className="font-normal">Steps</th>
            <th className="font-normal">Last loss</th>
          </tr>
        </thead>
        <tbody>
          {list.map((run) => {
            const last = trainSteps(run).at(-1);
            const ticked = compared.includes(run.id);
            return (
              <tr key={run.id}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`compare the run started ${new Date(run.started).toLocaleString()}`}
                    checked={ticked}
                    disabled={!ticked && compared.length >= MOST_COMPARED}
                    onChange={() =>
                      setCompared(ticked ? compared.filter((id) => id !== run.id) : [...compared, run.id])
                    }
                  />
                </td>
                <td>{new Date(run.started).toLocaleString()}</td>
                <td>{run.settings.method.toUpperCase()}</td>
                <td>{settingsSummary(run.settings)}</td>
                <td>{run.model}</td>
                <td title={`dataset fingerprint ${run.fingerprint}`}>
                  {run.files.join(', ')}{' '}
                  <span className="font-mono text-slate-500 dark:text-slate-400">{run.fingerprint}</span>
                </td>
                <td>
                  {last ? `${last.step} of ${last.totalSteps}` : '0'}
                  {!run.ended && ' (resumable)'}
                </td>
                <td>{last ? last.loss.toFixed(4) : '—'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {shown.length > 0 && (
        <div className="mt-3">
          <MetricChart title="Training loss, runs compared" x={x} series={series} />
        </div>
      )}
    </div>
  );
}
