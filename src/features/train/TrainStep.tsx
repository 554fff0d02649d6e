/** The Train step. Its workings arrive with later issues; for now it says what it will do. */
export function TrainStep() {
  return (
    <section aria-labelledby="train-heading" className="space-y-2">
      <h1 id="train-heading" className="text-2xl font-semibold">
        Train
      </h1>
      <p className="text-slate-600 dark:text-slate-300">
        Choose how to fine-tune (continued pretraining, instruction tuning, reinforcement learning or DPO) and watch the
        loss live.
      </p>
      <p className="text-sm text-slate-500">This step is not built yet.</p>
    </section>
  );
}
