import type { GpuReport } from '../../../workers/engine/api';
import { formatBytes } from '../../lib/format';
import { useGpuReport } from './use-gpu-report';

/** The GPU the engine worker found: what it is, what it can hold, and proof that a kernel ran on it. */
export function GpuPanel() {
  const report = useGpuReport();
  return (
    <section
      aria-labelledby="gpu-heading"
      data-testid="gpu-panel"
      className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm dark:border-slate-700 dark:bg-slate-900"
    >
      <h2
        id="gpu-heading"
        className="mb-3 text-sm font-semibold uppercase tracking-wide text-slate-500 dark:text-slate-400"
      >
        Your GPU
      </h2>
      {report.isPending && (
        <p className="text-slate-600 dark:text-slate-300">Asking the engine worker for a WebGPU adapter…</p>
      )}
      {report.isError && <NoGpu reason="device-failed" message={String(report.error)} />}
      {report.data && (report.data.ok ? <AdapterDetails report={report.data} /> : <NoGpu {...report.data} />)}
    </section>
  );
}

function AdapterDetails({ report }: { report: Extract<GpuReport, { ok: true }> }) {
  const { adapter, selfTest } = report;
  const rows: [string, string][] = [
    ['Vendor', adapter.vendor || 'unknown'],
    ['Architecture', adapter.architecture || 'unknown'],
    ['Description', adapter.description || adapter.device || 'unknown'],
    ['Kind', adapter.isFallbackAdapter ? 'Software (CPU) adapter: correct but slow' : 'Hardware GPU'],
    ['shader-f16', adapter.shaderF16 ? 'yes' : 'no'],
    ['Largest storage binding', formatBytes(adapter.limits.maxStorageBufferBindingSize)],
    ['Largest buffer', formatBytes(adapter.limits.maxBufferSize)],
    ['Workgroup memory', `${adapter.limits.maxComputeWorkgroupStorageSize / 1024} KiB`],
  ];
  return (
    <div>
      <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
        {rows.map(([label, value]) => (
          <div key={label} className="contents">
            <dt className="text-slate-500 dark:text-slate-400">{label}</dt>
            <dd className="font-medium text-slate-900 dark:text-slate-100">{value}</dd>
          </div>
        ))}
      </dl>
      <p
        data-testid="self-test"
        data-passed={String(selfTest.passed)}
        className={`mt-3 rounded px-2 py-1 text-sm ${selfTest.passed ? 'bg-emerald-50 text-emerald-800 dark:bg-emerald-950 dark:text-emerald-200' : 'bg-red-50 text-red-800'}`}
      >
        {selfTest.passed ? '✓ Verified' : '✗ Wrong result from'} a {selfTest.kernel} kernel ({selfTest.shape.M}×
        {selfTest.shape.K} · {selfTest.shape.K}×{selfTest.shape.N}) against the CPU: max error{' '}
        {selfTest.maxAbsError.toExponential(1)} in {selfTest.milliseconds.toFixed(0)} ms.
      </p>
    </div>
  );
}

function NoGpu({ reason, message }: { reason: string; message: string }) {
  return (
    <div role="alert" data-testid="no-webgpu" className="space-y-2 text-sm text-slate-800 dark:text-slate-200">
      <p className="font-semibold text-red-700 dark:text-red-400">
        {reason === 'no-webgpu' ? 'This browser has no WebGPU, which Hone needs to train.' : 'WebGPU could not start.'}
      </p>
      <p className="text-slate-600 dark:text-slate-400">{message}</p>
      <ul className="list-disc pl-5">
        <li>Use a current Chrome or Edge (version 113 or later) on Windows, macOS or ChromeOS, or Safari 26.</li>
        <li>
          On Linux, Chrome/Chromium needs WebGPU switched on: open <code>chrome://flags/#enable-unsafe-webgpu</code>,
          enable it and restart (or start the browser with <code>--enable-unsafe-webgpu</code>).
        </li>
        <li>
          Firefox: version 141 or later on Windows; elsewhere set <code>dom.webgpu.enabled</code> in about:config.
        </li>
        <li>Check that hardware acceleration is on in the browser's settings.</li>
      </ul>
    </div>
  );
}
