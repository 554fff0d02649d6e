import * as Comlink from 'comlink';
import { useEffect } from 'react';
import type { DatasetFormat } from '../../../core/dataset/formats';
import { parameterCount } from '../../../core/model-memory';
import {
  defaultSettings,
  METHOD_FORMATS,
  type Method,
  methodForFormat,
  settingsProblems,
  type TrainSettings,
} from '../../../core/training/settings';
import type { TrainRequest } from '../../../workers/engine/api';
import { NextStep } from '../../components/NextStep';
import { RewardPicker, STARTER_RULE } from '../../components/RewardPicker';
import { button, card, Step } from '../../components/ui';
import { getEngine } from '../../lib/engine';
import { useDataset } from '../../stores/dataset';
import { useModel } from '../../stores/model';
import { useTraining } from '../../stores/training';
import { RunEstimate } from './RunEstimate';
import { RunPanel } from './RunPanel';
import { RunsList } from './RunsList';
import { SettingsForm } from './SettingsForm';
import { StartFrom } from './StartFrom';

/** The method that fits the dataset's format (supervised fine-tuning before there is data). */
function methodFor(format: DatasetFormat | undefined): Method {
  return (format && methodForFormat(format)) || 'sft';
}

/** The Train step: settings with defaults for the model and data, refused with reasons, then the run, live. */
export function TrainStep() {
  const loaded = useModel((s) => s.loaded);
  const dataset = useDataset();
  const training = useTraining();
  const { settings, setSettings, initialAdapter } = training;
  const parameters = loaded ? parameterCount(loaded.config) : 0;
  const format = dataset.summary?.format;

  // Defaults arrive with the model (their size sets the learning rate) and the data (its format, the method).
  useEffect(() => {
    if (!loaded || settings) return;
    setSettings({ ...defaultSettings(methodFor(format), parameters), seqLen: dataset.settings.maxLength });
  }, [loaded, settings, setSettings, format, parameters, dataset.settings.maxLength]);

  // New data of another shape: switch to a method that trains on it, keeping the sequence length and seed.
  useEffect(() => {
    if (!settings || !format || METHOD_FORMATS[settings.method].some((f) => f === format)) return;
    const method = methodFor(format);
    if (METHOD_FORMATS[method].some((f) => f === format)) {
      setSettings({
        ...defaultSettings(method, parameters),
        seqLen: settings.seqLen,
        seed: settings.seed,
        ...initialAdapter?.shape,
      });
    }
  }, [format, settings, setSettings, parameters, initialAdapter]);

  // Policy optimization starts from a rule to edit, until a person picks otherwise.
  const { reward, setReward } = training;
  useEffect(() => {
    if (settings?.method === 'grpo' && !reward) setReward({ kind: 'rule', name: 'rule.js', source: STARTER_RULE });
  }, [settings?.method, reward, setReward]);

  const busy = training.status === 'running' || training.status === 'preparing';
  const problems =
    settings && loaded
      ? settingsProblems(settings, { config: loaded.config, format, sequences: dataset.summary?.records })
      : [];
  if (settings?.method === 'grpo' && !training.reward) problems.push('Pick the reward: a rule or a reward model.');
  const missing = !loaded
    ? 'Load a model in the Model step first.'
    : !dataset.summary
      ? 'Drop a dataset in the Data step first.'
      : null;

  // What starting (or timing) a run sends the engine: the settings, the data and how to split it, the reward, the
  // adapter continued.
  const request = (model: string, s: TrainSettings): TrainRequest => ({
    model,
    settings: s,
    data: {
      ...dataset.choice,
      validation: dataset.settings.validation,
      splitSeed: dataset.settings.seed,
      trainOnPrompt: dataset.settings.trainOnPrompt,
    },
    reward: s.method === 'grpo' ? (training.reward ?? undefined) : undefined,
    initialAdapter: training.initialAdapter ?? undefined,
  });
  const files = () => dataset.files.map((f) => ({ name: f.name, blob: f }));

  const start = async () => {
    if (!settings || !loaded) return;
    training.reset('preparing');
    try {
      await getEngine().startTraining(request(loaded.label, settings), files(), Comlink.proxy(training.handle));
    } catch (error) {
      training.fail((error as Error).message);
    }
  };

  return (
    <Step
      id="train"
      title="Train"
      summary="Choose how to fine-tune and watch the loss live. Training runs in a worker on your GPU; the page stays free."
    >
      {missing && <p className="text-sm text-slate-600 dark:text-slate-300">{missing}</p>}
      {loaded && dataset.summary && (
        <p className="text-sm text-slate-700 dark:text-slate-200" data-testid="train-inputs">
          Trains <strong>{loaded.label}</strong> on <strong>{dataset.files.map((f) => f.name).join(', ')}</strong> (
          {dataset.summary.format}, {dataset.summary.records.toLocaleString()} records)
          {training.initialAdapter && (
            <>
              , continuing <strong>{training.initialAdapter.name}</strong>
            </>
          )}
          .
        </p>
      )}
      {training.status !== 'idle' && <RunPanel />}
      {(training.status === 'finished' || training.status === 'stopped') && (
        <NextStep to="compare" what="chat with the base and the tuned model side by side" />
      )}
      {settings && loaded && (
        <div className={card}>
          <SettingsForm
            settings={settings}
            onChange={setSettings}
            onMethod={(method) =>
              setSettings({
                ...defaultSettings(method, parameters),
                seqLen: settings.seqLen,
                seed: settings.seed,
                // An adapter being continued keeps its shape whatever the method.
                ...training.initialAdapter?.shape,
              })
            }
            parameters={parameters}
            disabled={busy}
          />
          <RunEstimate
            config={loaded.config}
            halfMatrices={loaded.halfMatrices}
            settings={settings}
            parameters={parameters}
            timing={
              dataset.summary && problems.length === 0
                ? {
                    // Any change to what the run would be makes an earlier measurement stale.
                    key: JSON.stringify([
                      request(loaded.label, settings),
                      training.initialAdapter?.name,
                      dataset.files.map((f) => [f.name, f.size, f.lastModified]),
                    ]),
                    measure: () => getEngine().timeRun(request(loaded.label, settings), files()),
                    disabled: busy,
                  }
                : null
            }
          />
          <StartFrom
            picked={training.initialAdapter}
            settings={settings}
            onPick={(picked, next) => {
              training.setInitialAdapter(picked);
              setSettings(next);
            }}
            disabled={busy}
          />
          {settings.method === 'grpo' && (
            <RewardPicker reward={training.reward} onChange={training.setReward} disabled={busy} />
          )}
          {problems.length > 0 && (
            <ul
              role="alert"
              className="mt-3 list-disc pl-5 text-sm text-red-700 dark:text-red-400"
              data-testid="train-problems"
            >
              {problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
          <button
            type="button"
            disabled={busy || problems.length > 0 || missing !== null}
            onClick={start}
            className={`${button} mt-3 bg-indigo-600 text-white hover:bg-indigo-700`}
          >
            Start training
          </button>
        </div>
      )}
      <RunsList />
    </Step>
  );
}
