import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { originalWeightsNote } from '../../../core/base-precision';
import type { KeptCheckpoint } from '../../../workers/engine/api';
import { CheckpointChoice } from '../../components/CheckpointChoice';
import { button, card, ErrorMessage, Step } from '../../components/ui';
import { download } from '../../lib/download';
import { getEngine } from '../../lib/engine';
import { useModel } from '../../stores/model';
import { useTraining } from '../../stores/training';
import { GgufExport } from './GgufExport';
import { JobExport } from './JobExport';
import { PublishPanel } from './PublishPanel';

type Which = 'run' | KeptCheckpoint;

/**
 * The Export step: which run (this one, or a kept checkpoint), then its adapter in PEFT's format or the tuned model
 * in the Hugging Face layout, a GGUF for llama.cpp / Ollama / LM Studio, publishing to the Hub, or a TRL job.
 */
export function ExportStep() {
  const loaded = useModel((s) => s.loaded);
  const status = useTraining((s) => s.status);
  const method = useTraining((s) => s.settings?.method ?? null);
  const hasRun = status === 'finished' || status === 'stopped' || status === 'paused';
  const [which, setWhich] = useState<Which>('run');
  return (
    <Step
      id="export"
      title="Export"
      summary="Take the tuned model anywhere: a PEFT adapter, a model for transformers, GGUF for llama.cpp, Ollama and LM Studio, or a repo on the Hugging Face Hub."
    >
      {!loaded && <p className="text-sm text-slate-600 dark:text-slate-300">Load the run's model in the Model step.</p>}
      {loaded && (
        <>
          <fieldset className={`${card} flex flex-wrap items-center gap-4 text-sm`}>
            <legend className="sr-only">Which adapter</legend>
            <label className="flex items-center gap-2">
              <input type="radio" checked={which === 'run'} onChange={() => setWhich('run')} />
              This run’s adapter{!hasRun && ' (train one first)'}
            </label>
            <CheckpointChoice chosen={typeof which === 'object' ? which : null} onChoose={setWhich} />
          </fieldset>
          <PeftExport which={which} />
          <GgufExport which={which} />
          <PublishPanel which={which} model={loaded.label} method={typeof which === 'object' ? null : method} />
          <JobExport model={loaded.label} />
        </>
      )}
    </Step>
  );
}

/** The adapter in PEFT's format, or the tuned model in the Hugging Face layout, each as one zip. */
function PeftExport({ which }: { which: Which }) {
  const base = useModel((s) => s.loaded?.base ?? 'f16');
  const exported = useMutation({
    mutationFn: ({ merged }: { merged: boolean }) =>
      merged ? getEngine().exportMerged(which) : getEngine().exportAdapter(which),
    onSuccess: (result) => download(result.fileName, result.zip),
  });
  return (
    <div className={`${card} space-y-3 text-sm`} data-testid="export-adapter">
      <h3 className="font-semibold">For PEFT and transformers</h3>
      <div className="flex flex-wrap gap-3">
        <button
          type="button"
          className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
          disabled={exported.isPending}
          onClick={() => exported.mutate({ merged: false })}
        >
          Download the adapter (.zip)
        </button>
        <button
          type="button"
          className={`${button} border border-indigo-600 text-indigo-700 dark:text-indigo-300`}
          disabled={exported.isPending}
          onClick={() => exported.mutate({ merged: true })}
        >
          Download the tuned model (.zip)
        </button>
      </div>
      <p className="text-slate-600 dark:text-slate-300">
        The adapter loads with PEFT on top of the base model. The tuned model has the adapter folded into its weights
        (or is the weights themselves, for a run that trained every one), in the Hugging Face layout, and loads with
        transformers alone.
        {originalWeightsNote(base) && <span data-testid="export-original-weights"> {originalWeightsNote(base)}</span>}
      </p>
      {exported.isPending && <p>Preparing the download…</p>}
      {exported.isSuccess && (
        <p data-testid="export-result">
          {exported.data.fileName}: {exported.data.files.join(', ')}
        </p>
      )}
      {exported.isError && <ErrorMessage error={exported.error} />}
    </div>
  );
}
