import { useMutation } from '@tanstack/react-query';
import { button, ErrorMessage } from '../../components/ui';

/** The example datasets served beside the studio (public/examples), one for each kind of training. */
const EXAMPLES = [
  { file: 'instructions.jsonl', label: 'Instructions', what: 'questions and answers, for supervised fine-tuning' },
  { file: 'preferences.jsonl', label: 'Preferences', what: 'chosen and rejected answers, for DPO or a reward model' },
  { file: 'rl-prompts.jsonl', label: 'RL prompts', what: 'prompts with reference answers, for policy optimization' },
  { file: 'continued-pretraining.txt', label: 'Raw text', what: 'a book, for continued pretraining' },
] as const;

/** One click to a dataset that works offline with the demo model, for a first try without data of one's own. */
export function ExampleDatasets({ onFiles, hasData }: { onFiles: (files: File[]) => void; hasData: boolean }) {
  const fetchExample = useMutation({
    mutationFn: async (file: string) => {
      const response = await fetch(new URL(`examples/${file}`, document.baseURI));
      if (!response.ok) throw new Error(`examples/${file}: the studio's server answered HTTP ${response.status}`);
      return new File([await response.blob()], file);
    },
    onSuccess: (file) => onFiles([file]),
  });
  return (
    <div className="text-sm" data-testid="example-datasets">
      <p className="text-slate-600 dark:text-slate-300">
        {hasData ? 'Or try an example:' : 'No dataset at hand? Try an example:'}
      </p>
      <div className="mt-2 flex flex-wrap gap-2">
        {EXAMPLES.map((e) => (
          <button
            key={e.file}
            type="button"
            title={e.what}
            className={`${button} border border-slate-300 dark:border-slate-600`}
            disabled={fetchExample.isPending}
            onClick={() => fetchExample.mutate(e.file)}
          >
            {e.label} <span className="text-slate-500 dark:text-slate-400">({e.what})</span>
          </button>
        ))}
      </div>
      {fetchExample.isError && <ErrorMessage error={fetchExample.error} />}
    </div>
  );
}
