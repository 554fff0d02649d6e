import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  /** One value per x; null where this series has none (validation loss between evaluations). */
  values: (number | null)[];
}

/** Tick spacings for the step axis: 1, 2, 5, 10, 20, 50, ... */
const STEP_TICKS = Array.from({ length: 8 }, (_, power) => [1, 2, 5].map((m) => m * 10 ** power)).flat();

/** Tick labels with as many decimals as the tick spacing needs, so no two ticks read the same (0.0012, 0.0014). */
function tickLabels(_: uPlot, splits: number[], _axis: number, _space: number, incr: number): string[] {
  const decimals = Math.min(12, Math.max(0, Math.ceil(-Math.log10(incr) - 1e-9)));
  return splits.map((v) => v.toFixed(decimals));
}

/**
 * One live line chart (uPlot: fast enough to redraw on every step). `x` is the optimizer step; series share it,
 * and a series with gaps (validation loss) is drawn through them. `range` fixes the y axis (accuracy: 0 to 1).
 */
export function MetricChart(props: {
  title: string;
  x: number[];
  series: Series[];
  log?: boolean;
  range?: [number, number];
}) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const { title, x, series, log, range } = props;
  const labels = series.map((s) => `${s.label}:${s.color}`).join();

  // biome-ignore lint/correctness/useExhaustiveDependencies: the chart is rebuilt only when its series change, not its data.
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const plot = new uPlot(
      {
        width: element.clientWidth || 320,
        height: 160,
        // The series' names only: values under the cursor would read "--" until hovered.
        legend: { show: true, live: false },
        scales: { x: { time: false }, y: log ? { distr: 3 } : range ? { range } : {} },
        // Steps are whole numbers: ticks at whole steps only.
        axes: [
          { label: 'step', size: 30, incrs: STEP_TICKS },
          { size: 56, values: log ? undefined : tickLabels },
        ],
        series: [
          { label: 'step' },
          ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: true })),
        ],
      },
      [x, ...series.map((s) => s.values)] as uPlot.AlignedData,
      element,
    );
    chart.current = plot;
    const resize = new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: 160 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
      chart.current = null;
    };
  }, [labels, log, range?.[0], range?.[1]]);

  useEffect(() => {
    chart.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  return (
    <figure className="min-w-0" data-testid={`chart-${title}`}>
      <figcaption className="text-sm font-medium text-slate-600 dark:text-slate-300">{title}</figcaption>
      <div ref={container} />
    </figure>
  );
}
