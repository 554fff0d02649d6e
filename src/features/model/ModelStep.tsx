/** The Model step. Its workings arrive with later issues; for now it says what it will do. */
export function ModelStep() {
  return (
    <section aria-labelledby="model-heading" className="space-y-2">
      <h1 id="model-heading" className="text-2xl font-semibold">
        Model
      </h1>
      <p className="text-slate-600 dark:text-slate-300">
        Pick a pretrained model: SmolLM2, Qwen2.5/3, Llama 3.2 from the Hugging Face Hub, a local folder, or Hone's
        offline demo model.
      </p>
      <p className="text-sm text-slate-500">This step is not built yet.</p>
    </section>
  );
}
