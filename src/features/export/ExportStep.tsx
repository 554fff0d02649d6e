/** The Export step. Its workings arrive with later issues; for now it says what it will do. */
export function ExportStep() {
  return (
    <section aria-labelledby="export-heading" className="space-y-2">
      <h1 id="export-heading" className="text-2xl font-semibold">
        Export
      </h1>
      <p className="text-slate-600 dark:text-slate-300">
        Download the LoRA adapter in PEFT's format, to load with Hugging Face PEFT anywhere.
      </p>
      <p className="text-sm text-slate-500">This step is not built yet.</p>
    </section>
  );
}
