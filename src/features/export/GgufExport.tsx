import { useMutation, useQuery } from '@tanstack/react-query';
import * as Comlink from 'comlink';
import { useState } from 'react';
import type { GgufDtype, GgufKind, GgufProgress, KeptCheckpoint } from '../../../workers/engine/api';
import { button, card, ErrorMessage, input } from '../../components/ui';
import { download } from '../../lib/download';
import { getEngine } from '../../lib/engine';
import { formatBytes } from '../../lib/format';
import { useTraining } from '../../stores/training';

export const GGUF_KINDS: { kind: GgufKind; label: string }[] = [
  { kind: 'merged', label: 'The tuned model (the adapter folded in: runs on its own)' },
  { kind: 'lora', label: "The adapter alone (llama.cpp's LoRA, over the base model's GGUF)" },
  { kind: 'base', label: 'The base model, as loaded' },
];

export const GGUF_DTYPES: { dtype: GgufDtype; label: string }[] = [
  { dtype: 'f16', label: 'f16 (16-bit)' },
  { dtype: 'q8_0', label: 'q8_0 (8-bit: about half the size, nearly the same answers)' },
  { dtype: 'f32', label: 'f32 (32-bit, the largest)' },
];

/** The GGUF's kind and type, as two selects; an adapter alone stays float (no q8_0). */
export function GgufChoiceFields(props: {
  kind: GgufKind;
  dtype: GgufDtype;
  onChange: (choice: { kind: GgufKind; dtype: GgufDtype }) => void;
}) {
  const { kind, dtype, onChange } = props;
  return (
    <div className="flex flex-wrap gap-3">
      <label className="flex min-w-0 flex-col">
        <span className="text-slate-600 dark:text-slate-300">What</span>
        <select
          className={input}
          value={kind}
          onChange={(e) => {
            const next = e.target.value as GgufKind;
            onChange({ kind: next, dtype: next === 'lora' && dtype === 'q8_0' ? 'f16' : dtype });
          }}
        >
          {GGUF_KINDS.map((k) => (
            <option key={k.kind} value={k.kind}>
              {k.label}
            </option>
          ))}
        </select>
      </label>
      <label className="flex min-w-0 flex-col">
        <span className="text-slate-600 dark:text-slate-300">Weights</span>
        <select
          className={input}
          value={dtype}
          onChange={(e) => onChange({ kind, dtype: e.target.value as GgufDtype })}
        >
          {GGUF_DTYPES.map((d) => (
            <option key={d.dtype} value={d.dtype} disabled={kind === 'lora' && d.dtype === 'q8_0'}>
              {d.label}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

/** How far a GGUF is written: bytes of all, and the tensor at hand. */
export function GgufProgressBar({ progress }: { progress: GgufProgress }) {
  return (
    <div data-testid="gguf-progress">
      <progress className="w-full" value={progress.bytesDone} max={progress.bytesTotal} aria-label="Writing the GGUF" />
      <span>
        Writing tensor {Math.min(progress.tensorsDone + 1, progress.tensorsTotal)} of {progress.tensorsTotal}:{' '}
        {formatBytes(progress.bytesDone)} of {formatBytes(progress.bytesTotal)}
      </span>
    </div>
  );
}

/**
 * The model as GGUF for llama.cpp, Ollama and LM Studio: what and at which precision, the file's size before it is
 * written, then one zip with the GGUF, an Ollama Modelfile and a README saying how to run it.
 */
export function GgufExport({ which }: { which: 'run' | KeptCheckpoint }) {
  const [choice, setChoice] = useState<{ kind: GgufKind; dtype: GgufDtype }>({ kind: 'merged', dtype: 'f16' });
  const settings = useTraining((s) => s.settings);
  const status = useTraining((s) => s.status);
  const request = { which, ...choice };
  const size = useQuery({
    queryKey: ['gguf-bytes', request, choice.kind === 'base' ? null : [status, settings]],
    queryFn: () => getEngine().ggufBytes(request),
    retry: false,
  });
  const [progress, setProgress] = useState<GgufProgress | null>(null);
  const exported = useMutation({
    mutationFn: () => {
      setProgress(null);
      return getEngine().exportGguf(request, Comlink.proxy(setProgress));
    },
    onSuccess: (result) => download(result.fileName, result.zip),
  });
  return (
    <div className={`${card} space-y-3 text-sm`} data-testid="export-gguf">
      <h3 className="font-semibold">GGUF for llama.cpp, Ollama and LM Studio</h3>
      <GgufChoiceFields kind={choice.kind} dtype={choice.dtype} onChange={setChoice} />
      <p data-testid="gguf-size">
        {size.isSuccess && `The GGUF will be ${formatBytes(size.data)}, in a zip with an Ollama Modelfile.`}
        {size.isPending && 'Working out the size…'}
      </p>
      {size.isError && <ErrorMessage error={size.error} />}
      <button
        type="button"
        className={`${button} bg-indigo-600 text-white hover:bg-indigo-700`}
        disabled={exported.isPending || !size.isSuccess}
        onClick={() => exported.mutate()}
      >
        Download the GGUF (.zip)
      </button>
      {exported.isPending && progress && <GgufProgressBar progress={progress} />}
      {exported.isSuccess && (
        <p data-testid="gguf-result">
          {exported.data.fileName}: {exported.data.files.join(', ')}. Unzip it, then{' '}
          <code>ollama create NAME -f Modelfile</code>, or <code>llama-cli -m FILE.gguf</code>, or import the .gguf in
          LM Studio.
        </p>
      )}
      {exported.isError && <ErrorMessage error={exported.error} />}
    </div>
  );
}
