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

/**
 * One live line chart (uPlot: fast enough to redraw on every step). `x` is the optimizer step; series share it,
 * and a series with gaps (validation loss) is drawn through them.
 */
export function MetricChart(props: { title: string; x: number[]; series: Series[]; log?: boolean }) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const { title, x, series, log } = props;
  const labels = series.map((s) => `${s.label}:${s.color}`).join();

  // biome-ignore lint/correctness/useExhaustiveDependencies: the chart is rebuilt only when its series change, not its data.
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const plot = new uPlot(
      {
        width: element.clientWidth || 320,
        height: 160,
        legend: { show: true },
        scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
        // Steps are whole numbers: ticks at whole steps only.
        axes: [{ label: 'step', size: 30, incrs: STEP_TICKS }, { size: 50 }],
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
  }, [labels, log]);

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
