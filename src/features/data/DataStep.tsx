/** The Data step. Its workings arrive with later issues; for now it says what it will do. */
export function DataStep() {
  return (
    <section aria-labelledby="data-heading" className="space-y-2">
      <h1 id="data-heading" className="text-2xl font-semibold">
        Data
      </h1>
      <p className="text-slate-600 dark:text-slate-300">
        Drop a dataset (JSONL, JSON, CSV, Parquet or plain text); Hone detects its shape, checks every record and shows
        a preview.
      </p>
      <p className="text-sm text-slate-500">This step is not built yet.</p>
    </section>
  );
}
