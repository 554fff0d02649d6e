/** The Compare step. Its workings arrive with later issues; for now it says what it will do. */
export function CompareStep() {
  return (
    <section aria-labelledby="compare-heading" className="space-y-2">
      <h1 id="compare-heading" className="text-2xl font-semibold">
        Compare
      </h1>
      <p className="text-slate-600 dark:text-slate-300">
        Chat with the base model and the tuned model side by side, from the same weights on your GPU.
      </p>
      <p className="text-sm text-slate-500">This step is not built yet.</p>
    </section>
  );
}
