import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { scoreInfo } from '../../../core/eval/metrics';
import type { EvalReport } from '../../../workers/engine/api';

/** One metric's means as bars, a bar per contestant, each with its 95% interval as a whisker (uPlot). */
function MetricBars({ report, metric }: { report: EvalReport; metric: string }) {
  const container = useRef<HTMLDivElement>(null);
  const names = report.contestants.map((c) => c.name);
  const stats = names.map((name) => report.summary.find((s) => s.contestant === name && s.metric === metric));
  const { label, max } = scoreInfo(metric);

  // biome-ignore lint/correctness/useExhaustiveDependencies: the report is replaced whole, never changed in place.
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const x = names.map((_, i) => i);
    const means = stats.map((s) => (s && s.n > 0 ? s.mean : null));
    // A fixed scale from 0; else from the lowest interval to the highest, 0 included (rewards may be negative).
    const shown = stats.flatMap((s) => (s && s.n > 0 ? [s] : []));
    const low = max === null ? Math.min(0, ...shown.map((s) => s.low)) : 0;
    const high = max ?? Math.max(0, ...shown.map((s) => s.high));
    const pad = (high - low || 1) * 0.05;
    const plot = new uPlot(
      {
        width: element.clientWidth || 320,
        height: 150,
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: false, range: [-0.5, names.length - 0.5] },
          y: { range: [low === 0 ? 0 : low - pad, high + pad] },
        },
        axes: [
          { splits: () => x, values: (_, splits) => splits.map((i) => names[i] ?? ''), size: 30, gap: 4 },
          { size: 64 },
        ],
        series: [
          {},
          {
            label,
            fill: 'rgba(99, 102, 241, 0.7)',
            stroke: 'rgb(79, 70, 229)',
            paths: uPlot.paths.bars?.({ size: [0.5, 80] }),
            fillTo: 0,
            points: { show: false },
          },
        ],
        hooks: {
          // Each bar's interval, low to high, as a whisker with caps.
          draw: [
            (u) => {
              const { ctx } = u;
              ctx.save();
              ctx.strokeStyle = 'rgb(30, 41, 59)';
              ctx.lineWidth = 1.5 * devicePixelRatio;
              stats.forEach((s, i) => {
                if (!s || s.n === 0) return;
                const cx = u.valToPos(i, 'x', true);
                const [low, high] = [u.valToPos(s.low, 'y', true), u.valToPos(s.high, 'y', true)];
                const cap = 6 * devicePixelRatio;
                ctx.beginPath();
                ctx.moveTo(cx, low);
                ctx.lineTo(cx, high);
                ctx.moveTo(cx - cap, low);
                ctx.lineTo(cx + cap, low);
                ctx.moveTo(cx - cap, high);
                ctx.lineTo(cx + cap, high);
                ctx.stroke();
              });
              ctx.restore();
            },
          ],
        },
      },
      [x, means] as uPlot.AlignedData,
      element,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: 150 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [report, metric]);

  return (
    <figure className="min-w-0" data-testid={`eval-chart-${metric}`}>
      <figcaption className="text-sm font-medium text-slate-600 dark:text-slate-300">
        {label}
        {!scoreInfo(metric).higherIsBetter && ' (lower is better)'}
      </figcaption>
      <div ref={container} />
    </figure>
  );
}

/** The summary as charts: per metric, each model's mean with its 95% bootstrap interval. */
export function EvalChart({ report }: { report: EvalReport }) {
  return (
    <div className="grid gap-4 md:grid-cols-2" data-testid="eval-chart">
      {report.metrics.map((metric) => (
        <MetricBars key={metric} report={report} metric={metric} />
      ))}
    </div>
  );
}
