/**
 * Evaluations on the session's GPU: each contestant's model put in place for its turn (the loaded model with an
 * adapter, or another model read for it), answering several examples at once and measuring perplexity; a rule and
 * a reward model as scorers; the report kept with the latest run.
 */
import type { ReadFile } from '../../core/checkpoint';
import { lastUserTurn } from '../../core/dataset/formats';
import { renderChat, renderExample, renderPrompt } from '../../core/dataset/render';
import { type EvalExample, perplexityTarget } from '../../core/eval/examples';
import { type ModelConfig, shortDims } from '../../core/model-config';
import { defaultBaseOf } from '../../core/model-memory';
import type { ModelTokenizer } from '../../core/tokenizer';
import { type ReplyModel, replyRows } from './chat';
import {
  type Answerer,
  type AnswerScorer,
  type Contestant,
  type EvalProgress,
  type EvalReport,
  type EvalRequest,
  evaluate,
} from './evaluate';
import { perplexities } from './model/perplexity';
import { loadModelFiles } from './model-loader';
import type { Engine } from './train/build-run';
import { type RewardChoice, rewardFromChoice } from './train/reward-choice';
import type { RewardSource } from './train/rewards';
import type { RunStore } from './train/training-session';
import { uploadChecked } from './upload-weights';

/** Most examples a model answers at once. */
const EVAL_ROWS = 8;
/** Bytes the answering rows' key-value caches may take together. */
const CACHE_BUDGET = 256 * 2 ** 20;
/** Answers a reward model scores per forward. */
const REWARD_ROWS = 4;

/** What an evaluation needs of the session. */
export interface EvaluationSource {
  engine(): Promise<Engine>;
  /** The loaded model with a contestant's adapter on it, and what to let go after; throws while a run trains. */
  tunedModel(adapter: Contestant['adapter']): Promise<{ model: ReplyModel; release(): void }>;
  /** A kept run's reward model as its adapter's files; other choices as they are. */
  rewardFiles(choice: RewardChoice): Promise<RewardChoice>;
  runs: RunStore | null;
}

export interface EvaluateOptions {
  onProgress?: (p: EvalProgress) => void;
  /** Called before a contestant's turn (the CLI puts that contestant's adapter beside the model there). */
  use?: (c: Contestant) => Promise<void>;
  /** Where the contestants marked `other` read their model. */
  other?: { label: string; read: ReadFile };
}

/** Examples answered at once: EVAL_ROWS, or fewer where their key-value caches would pass the budget or a binding. */
export function answeringRows(config: ModelConfig, length: number, limits: GPUSupportedLimits): number {
  const { KV, hd } = shortDims(config);
  const perLayer = length * KV * hd * 4;
  const byBudget = Math.floor(CACHE_BUDGET / (2 * config.numLayers * perLayer));
  const byBinding = Math.floor(limits.maxStorageBufferBindingSize / perLayer);
  return Math.max(1, Math.min(EVAL_ROWS, byBudget, byBinding));
}

export class RunEvaluation {
  private stopRequested = false;

  constructor(private readonly source: EvaluationSource) {}

  /**
   * The contestants answer every example and are scored (evaluate.ts). `stop` ends it after the batch at hand,
   * with the examples every one finished. The report is kept with the latest run.
   */
  async evaluate(request: EvalRequest, options: EvaluateOptions = {}): Promise<EvalReport> {
    if (request.contestants.some((c) => c.other) && !options.other) throw new Error('no other model was given');
    const engine = await this.source.engine();
    // The loaded model's tokenizer reads the answers for a reward model; its tokens size the scorer.
    const { model: loaded, release } = await this.source.tunedModel('none');
    release();
    const { tokenizer } = loaded;
    if (!tokenizer) throw new Error('The loaded model has no tokenizer, so it cannot read the examples.');
    const reader = { ...loaded, tokenizer };
    this.stopRequested = false;
    const scorers: (AnswerScorer & { destroy(): void })[] = [];
    try {
      if (request.rule !== undefined) {
        const choice = { kind: 'rule' as const, name: 'the rule', source: request.rule };
        scorers.push(await this.scorer('rule', choice, request, reader));
      }
      if (request.reward) {
        scorers.push(await this.scorer('reward', await this.source.rewardFiles(request.reward), request, reader));
      }
      const report = await evaluate(request, {
        answerer: async (contestant) => {
          await options.use?.(contestant);
          const other = contestant.other && options.other ? await this.otherModel(options.other) : null;
          const { model, release } = other ?? (await this.source.tunedModel(contestant.adapter));
          try {
            return answerer(engine, model, request, release);
          } catch (error) {
            release();
            throw error;
          }
        },
        scorers,
        onProgress: options.onProgress,
        stopped: () => this.stopRequested,
      });
      await this.source.runs?.saveEvaluation(report);
      return report;
    } finally {
      for (const s of scorers) s.destroy();
    }
  }

  /** The evaluation kept with the latest run (after a reload too); null when none is. */
  async kept(): Promise<EvalReport | null> {
    return (await this.source.runs?.evaluation()) ?? null;
  }

  stop(): void {
    this.stopRequested = true;
  }

  /** Another model's base, read and put on the GPU (at its default base precision) for its turn, let go after it. */
  private async otherModel(other: { label: string; read: ReadFile }): Promise<{ model: ReplyModel; release(): void }> {
    const { device, kernels } = await this.source.engine();
    const files = await loadModelFiles(other.read, other.label);
    if (!files.tokenizer) throw new Error(`${other.label}: ${files.tokenizerError}; it cannot read the examples`);
    const config = files.checkpoint.config;
    const halfMatrices = kernels.choices.halfWeights;
    const weights = await uploadChecked(device, files.checkpoint, {
      halfMatrices,
      base: defaultBaseOf(config, { limits: device.limits, halfMatrices }),
      what: `the weights of ${other.label}, which answer beside the loaded model`,
    });
    const model = { config: files.checkpoint.config, weights, lora: null, tokenizer: files.tokenizer };
    return { model, release: () => weights.destroy() };
  }

  /**
   * A rule or reward model as a scorer of answers: a reward model reads each conversation through the loaded
   * model's chat template, up to the longest prompt and answer long.
   */
  private async scorer(
    measure: AnswerScorer['measure'],
    choice: RewardChoice,
    request: EvalRequest,
    loaded: ReplyModel & { tokenizer: ModelTokenizer },
  ): Promise<AnswerScorer & { destroy(): void }> {
    const engine = await this.source.engine();
    const { tokenizer } = loaded;
    const longest = longestPrompt(tokenizer, request.examples);
    // The answer's stop tokens and the template's end of turn past the longest answer.
    const seq = Math.min(loaded.config.maxPositionEmbeddings, longest + request.maxNewTokens + 8);
    const source: RewardSource = await rewardFromChoice(
      choice,
      { ...engine, weights: loaded.weights },
      { rows: REWARD_ROWS, seq },
      { policyTokenizer: tokenizer, spawnRuleWorker: engine.spawnRuleWorker },
    );
    return {
      measure,
      score: (answers) =>
        source.score(
          answers.map((a) => ({
            prompt: lastUserTurn(a.prompt),
            completion: a.completion,
            reference: a.reference ?? undefined,
            ids: renderChat(tokenizer, [...a.prompt, { role: 'assistant', content: a.completion }]).ids,
          })),
        ),
      destroy: () => source.destroy(),
    };
  }
}

/** Tokens in the longest prompt of the examples that have one to answer. */
function longestPrompt(tokenizer: ModelTokenizer, examples: EvalExample[]): number {
  const asked = examples.filter((e) => e.text === undefined);
  return Math.max(1, ...asked.map((e) => renderPrompt(tokenizer, e.prompt).length));
}

/** A contestant's model as an evaluation's answerer: batches through replyRows, perplexity through forwards. */
function answerer(engine: Engine, model: ReplyModel, request: EvalRequest, release: () => void): Answerer {
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new Error('the model has no tokenizer, so it cannot read the examples');
  const { sampling, maxNewTokens, seed } = request;
  const longest = longestPrompt(tokenizer, request.examples);
  const length = Math.min(model.config.maxPositionEmbeddings, longest + maxNewTokens);
  return {
    rows: request.rows ?? answeringRows(model.config, length, engine.device.limits),
    answer: async (examples: EvalExample[]) => {
      const prompts = examples.map((e) => ({ messages: e.prompt }));
      const names = examples.map((e) => e.id);
      const replies = await replyRows(engine, model, { prompts, names, sampling, maxNewTokens, seed });
      return replies.map((r) => r.text);
    },
    perplexity: (examples: EvalExample[]) =>
      perplexities(
        engine,
        model,
        examples.map((e) => {
          const target = perplexityTarget(e);
          if (!target) throw new Error(`${e.id}: nothing to measure the perplexity of`);
          // The tokens and labels training reads of the same record.
          return renderExample(tokenizer, target)[0];
        }),
      ),
    release,
  };
}
