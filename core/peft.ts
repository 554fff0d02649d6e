/**
 * PEFT LoRA adapters: `adapter_config.json` and the tensor names of `adapter_model.safetensors`, read and written
 * the way the `peft` library does, so adapters move both ways between Hone and PyTorch. A language model's adapter
 * is task CAUSAL_LM; a reward model's is SEQ_CLS: the LoRA plus the `score` head (hidden → 1) that PEFT saves as a
 * module to save, as `get_peft_model(AutoModelForSequenceClassification(..., num_labels=1), LoraConfig(
 * task_type="SEQ_CLS"))` writes it.
 */
import { type ModelConfig, PROJECTIONS, type Projection, projectionKey, projectionShape } from './model-config';
import { serializeSafetensors, type WritableTensor } from './safetensors';

export type TaskType = 'CAUSAL_LM' | 'SEQ_CLS';

/** Where PEFT saves a sequence-classification model's head, and the names other tools use for it. */
export const SCORE_TENSOR_KEY = 'base_model.model.score.weight';
const SCORE_KEY = /^(?:base_model\.model\.)?score(?:\.modules_to_save(?:\.[^.]+)?)?\.weight$/;

export interface AdapterConfig {
  peftType: 'LORA';
  taskType: TaskType | null;
  baseModelNameOrPath: string | null;
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /**
   * PEFT's two forms: names matched against the end of module paths (`q_proj` matches
   * `model.layers.0.self_attn.q_proj`), or one regular expression that must match a whole path.
   * The `all-linear` shorthand is read as the seven projections.
   */
  targetModules: string[] | string;
  useRslora: boolean;
  bias: 'none';
  fanInFanOut: false;
  /** Only these layers are adapted; null for all. PEFT's single-int form is read as a list of one. */
  layersToTransform: number[] | null;
  modulesToSave: string[] | null;
}

/** What `serializeAdapterConfig` writes; an `AdapterConfig` is one. The task is CAUSAL_LM unless given. */
export type AdapterConfigInit = Pick<
  AdapterConfig,
  'r' | 'loraAlpha' | 'loraDropout' | 'targetModules' | 'useRslora' | 'layersToTransform' | 'baseModelNameOrPath'
> & { taskType?: TaskType | null };

export class PeftError extends Error {
  constructor(
    readonly source: string,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
    this.name = 'PeftError';
  }
}

/** The parsed JSON of an `adapter_config.json`. Absent fields take LoraConfig's defaults. */
export function parseAdapterConfig(json: unknown, source = 'adapter_config.json'): AdapterConfig {
  const fail = (field: string, detail: string) => new PeftError(source, `${field} ${detail}`);
  if (!isRecord(json)) throw new PeftError(source, `not a JSON object, got ${show(json)}`);
  const get = (field: string) => (Object.hasOwn(json, field) ? json[field] : undefined);

  if (get('peft_type') !== 'LORA') throw fail('peft_type', `must be "LORA", got ${show(get('peft_type'))}`);
  const taskType = get('task_type') ?? null;
  if (taskType !== null && taskType !== 'CAUSAL_LM' && taskType !== 'SEQ_CLS') {
    throw fail(
      'task_type',
      `must be "CAUSAL_LM" (a language model's adapter) or "SEQ_CLS" (a reward model's), got ${show(taskType)}`,
    );
  }
  // Features that change what the weights mean: better refused than silently dropped.
  const refusals: Array<[string, boolean, string]> = [
    ['use_dora', get('use_dora') === true, 'DoRA is not supported'],
    ['rank_pattern', isNonEmpty(get('rank_pattern')), 'per-module ranks are not supported'],
    ['alpha_pattern', isNonEmpty(get('alpha_pattern')), 'per-module alphas are not supported'],
    ['lora_bias', get('lora_bias') === true, 'a bias on lora_B is not supported'],
    ['exclude_modules', isNonEmpty(get('exclude_modules')), 'excluded modules are not supported'],
    ['bias', (get('bias') ?? 'none') !== 'none', 'must be "none": Hone trains no bias terms'],
    ['fan_in_fan_out', (get('fan_in_fan_out') ?? false) !== false, 'must be false (a Conv1D layout)'],
  ];
  for (const [field, refused, why] of refusals) if (refused) throw fail(field, `${show(get(field))}: ${why}`);

  const r = get('r') ?? 8;
  if (!Number.isSafeInteger(r) || (r as number) <= 0) throw fail('r', `must be a positive integer, got ${show(r)}`);
  const loraAlpha = get('lora_alpha') ?? 8;
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha) || loraAlpha <= 0) {
    throw fail('lora_alpha', `must be a positive number, got ${show(loraAlpha)}`);
  }
  const loraDropout = get('lora_dropout') ?? 0;
  if (typeof loraDropout !== 'number' || !(loraDropout >= 0 && loraDropout < 1)) {
    throw fail('lora_dropout', `must be a number in [0, 1), got ${show(loraDropout)}`);
  }
  const useRslora = get('use_rslora') ?? false;
  if (typeof useRslora !== 'boolean') throw fail('use_rslora', `must be true or false, got ${show(useRslora)}`);

  const targetModules = parseTargetModules(get('target_modules'), fail);
  const layersToTransform = parseLayers(get('layers_to_transform'), fail);
  // LoraConfig refuses this pair too: with a regex, the layer filter would be ignored.
  if (typeof targetModules === 'string' && layersToTransform !== null) {
    throw fail('layers_to_transform', 'cannot be used when target_modules is a regular expression');
  }
  const baseModelNameOrPath = get('base_model_name_or_path') ?? null;
  if (baseModelNameOrPath !== null && typeof baseModelNameOrPath !== 'string') {
    throw fail('base_model_name_or_path', `must be a string, got ${show(baseModelNameOrPath)}`);
  }
  const modulesToSave = get('modules_to_save') ?? null;
  if (modulesToSave !== null && !isStringList(modulesToSave)) {
    throw fail('modules_to_save', `must be a list of names, got ${show(modulesToSave)}`);
  }

  return {
    peftType: 'LORA',
    taskType,
    baseModelNameOrPath,
    r: r as number,
    loraAlpha,
    loraDropout,
    targetModules,
    useRslora,
    bias: 'none',
    fanInFanOut: false,
    layersToTransform,
    modulesToSave,
  };
}

type Fail = (field: string, detail: string) => PeftError;

function parseTargetModules(value: unknown, fail: Fail): string[] | string {
  if (value === 'all-linear') return [...PROJECTIONS];
  if (typeof value === 'string') {
    try {
      fullMatcher(value);
    } catch {
      throw fail('target_modules', `${show(value)} is not a valid regular expression`);
    }
    return value;
  }
  if (!isStringList(value) || value.length === 0) {
    throw fail('target_modules', `must be a list of module names or a regular expression, got ${show(value)}`);
  }
  return value;
}

function parseLayers(value: unknown, fail: Fail): number[] | null {
  if (value === undefined || value === null) return null;
  const layers = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(layers) || !layers.every((l) => Number.isSafeInteger(l) && l >= 0)) {
    throw fail('layers_to_transform', `must be a layer index or a list of them, got ${show(value)}`);
  }
  return layers;
}

/** PEFT matches a string target with Python's re.fullmatch. */
function fullMatcher(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

/** Whether `adapter` puts LoRA on `projection` of layer `layer`, by PEFT's rules (check_target_module_exists). */
export function targetsModule(adapter: AdapterConfig, layer: number, projection: Projection): boolean {
  const path = modulePath(layer, projection);
  const { targetModules, layersToTransform } = adapter;
  if (typeof targetModules === 'string') return fullMatcher(targetModules).test(path);
  const named = targetModules.some((target) => path === target || path.endsWith(`.${target}`));
  return named && (layersToTransform === null || layersToTransform.includes(layer));
}

/** The factor on B·A: PEFT's lora_alpha / r, or lora_alpha / √r with rsLoRA. */
export function loraScale(adapter: Pick<AdapterConfig, 'r' | 'loraAlpha' | 'useRslora'>): number {
  return adapter.loraAlpha / (adapter.useRslora ? Math.sqrt(adapter.r) : adapter.r);
}

/** `model.layers.3.mlp.down_proj`: the module's name in the base model, which PEFT's target_modules match. */
function modulePath(layer: number, projection: Projection): string {
  return projectionKey(layer, projection).slice(0, -'.weight'.length);
}

/** The key PEFT saves a LoRA matrix under: `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export function loraTensorKey(layer: number, projection: Projection, which: 'A' | 'B'): string {
  return `base_model.model.${modulePath(layer, projection)}.lora_${which}.weight`;
}

const LORA_KEY =
  /^(?:base_model\.model\.)?(model\.layers\.(0|[1-9]\d*)\.(self_attn|mlp)\.([a-z_]+))\.lora_(A|B)(?:\.[^.]+)?\.weight$/;

/**
 * The module of a LoRA tensor key; null for any other key. Also accepts keys without the `base_model.model.`
 * prefix and with an adapter name (`lora_A.default.weight`), as other tools save them.
 */
export function parseLoraTensorKey(key: string): { layer: number; projection: Projection; which: 'A' | 'B' } | null {
  const match = LORA_KEY.exec(key);
  if (match === null) return null;
  const [, path, layerText, , projectionText, which] = match;
  const projection = PROJECTIONS.find((p) => p === projectionText);
  const layer = Number(layerText);
  // The block must be the projection's own: no `mlp.q_proj`.
  if (projection === undefined || modulePath(layer, projection) !== path) return null;
  return { layer, projection, which: which as 'A' | 'B' };
}

export interface LoraModule {
  layer: number;
  projection: Projection;
  /** The keys as found in the file. */
  keyA: string;
  keyB: string;
  /** [r, in] */
  shapeA: [number, number];
  /** [out, r] */
  shapeB: [number, number];
}

/**
 * Checks an adapter's tensors against the model and its config: every tensor is the A or B of a projection the
 * config targets, in a layer the model has, shaped for this model and rank, with its partner; every targeted
 * module has its pair. Returns the modules by layer, then projection.
 */
export function matchAdapterToModel(
  config: ModelConfig,
  adapter: AdapterConfig,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  source = 'adapter_model.safetensors',
): { modules: LoraModule[]; scoreKey: string | null } {
  const fail = (detail: string) => new PeftError(source, detail);
  const hint = ' (an adapter for a different model?)';
  const { r } = adapter;
  const beyond = adapter.layersToTransform?.find((layer) => layer >= config.numLayers);
  if (beyond !== undefined) {
    throw fail(`layers_to_transform names layer ${beyond} but the model has ${config.numLayers} layers${hint}`);
  }

  const found = new Map<string, { A?: string; B?: string }>();
  let scoreKey: string | null = null;
  for (const [key, { shape }] of tensors) {
    if (adapter.taskType === 'SEQ_CLS' && SCORE_KEY.test(key)) {
      if (shape.length !== 2 || shape[0] !== 1 || shape[1] !== config.hiddenSize) {
        throw fail(
          `tensor "${key}" has shape [${shape}], expected [1, ${config.hiddenSize}] (a reward model's score head: ` +
            `one label on hidden_size ${config.hiddenSize})${hint}`,
        );
      }
      scoreKey = key;
      continue;
    }
    const parsed = parseLoraTensorKey(key);
    if (parsed === null) {
      const saved = adapter.modulesToSave === null ? '' : ' (modules_to_save are not supported)';
      throw fail(`tensor "${key}" is not the lora_A or lora_B of an attention or MLP projection${saved}`);
    }
    const { layer, projection, which } = parsed;
    if (layer >= config.numLayers) {
      throw fail(`tensor "${key}" is for layer ${layer} but the model has ${config.numLayers} layers${hint}`);
    }
    if (!targetsModule(adapter, layer, projection)) {
      throw fail(`tensor "${key}" adapts ${modulePath(layer, projection)}, which target_modules does not target`);
    }
    const [out, inner] = projectionShape(config, projection);
    const expected = which === 'A' ? [r, inner] : [out, r];
    if (shape.length !== 2 || shape[0] !== expected[0] || shape[1] !== expected[1]) {
      throw fail(
        `tensor "${key}" has shape [${shape}], expected [${expected}] (lora_${which} for r = ${r} and ` +
          `${projection} [out, in] = [${out}, ${inner}])${hint}`,
      );
    }
    const slot = `${layer}.${projection}`;
    const pair = found.get(slot) ?? {};
    const twin = pair[which];
    if (twin !== undefined) {
      throw fail(`tensors "${twin}" and "${key}" are both lora_${which} of ${modulePath(layer, projection)}`);
    }
    pair[which] = key;
    found.set(slot, pair);
  }

  const modules: LoraModule[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const projection of PROJECTIONS) {
      const pair = found.get(`${layer}.${projection}`);
      if (pair === undefined) {
        if (targetsModule(adapter, layer, projection)) {
          throw fail(`target_modules targets ${modulePath(layer, projection)} but the file has no LoRA tensors for it`);
        }
        continue;
      }
      const { A: keyA, B: keyB } = pair;
      if (keyA === undefined || keyB === undefined) {
        const [have, missing] = keyA === undefined ? [keyB, 'A'] : [keyA, 'B'];
        throw fail(`tensor "${have}" has no lora_${missing} partner`);
      }
      const [out, inner] = projectionShape(config, projection);
      modules.push({ layer, projection, keyA, keyB, shapeA: [r, inner], shapeB: [out, r] });
    }
  }
  if (modules.length === 0) throw fail('holds no LoRA tensors for this model');
  if (adapter.taskType === 'SEQ_CLS' && scoreKey === null) {
    throw fail(`task_type is SEQ_CLS but the file has no score head (${SCORE_TENSOR_KEY})`);
  }
  return { modules, scoreKey };
}

/** The text of an `adapter_config.json` that PEFT loads, keys sorted as PEFT writes them. */
export function serializeAdapterConfig(adapter: AdapterConfigInit): string {
  const json = {
    base_model_name_or_path: adapter.baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    layers_to_transform: adapter.layersToTransform,
    lora_alpha: adapter.loraAlpha,
    lora_dropout: adapter.loraDropout,
    // PEFT saves a classifier's head beside the LoRA, under these names.
    ...(adapter.taskType === 'SEQ_CLS' && { modules_to_save: ['classifier', 'score'] }),
    peft_type: 'LORA',
    r: adapter.r,
    target_modules: adapter.targetModules,
    task_type: adapter.taskType ?? 'CAUSAL_LM',
    use_rslora: adapter.useRslora,
  };
  // Never write a file Hone itself would refuse.
  parseAdapterConfig(json, 'serializeAdapterConfig');
  return `${JSON.stringify(json, null, 2)}\n`;
}

/**
 * A PEFT adapter folder's two files: `adapter_config.json` and `adapter_model.safetensors` holding each module's
 * A ([r, in]) and B ([out, r]) as F32 under PEFT's keys. `modules` is keyed `${layer}.${projection}`. With a
 * reward model's score head ([hidden]), the adapter is task SEQ_CLS and holds the head too.
 */
export function serializeAdapter(
  config: AdapterConfigInit,
  modules: Map<string, { A: Float32Array; B: Float32Array }>,
  scoreHead?: Float32Array,
): { 'adapter_config.json': string; 'adapter_model.safetensors': Uint8Array } {
  const tensors = new Map<string, WritableTensor>();
  if (scoreHead) tensors.set(SCORE_TENSOR_KEY, { dtype: 'F32', shape: [1, scoreHead.length], data: scoreHead });
  for (const [key, { A, B }] of modules) {
    const [layer, projection] = key.split('.') as [string, Projection];
    tensors.set(loraTensorKey(Number(layer), projection, 'A'), {
      dtype: 'F32',
      shape: [config.r, A.length / config.r],
      data: A,
    });
    tensors.set(loraTensorKey(Number(layer), projection, 'B'), {
      dtype: 'F32',
      shape: [B.length / config.r, config.r],
      data: B,
    });
  }
  return {
    'adapter_config.json': serializeAdapterConfig({ ...config, taskType: scoreHead ? 'SEQ_CLS' : config.taskType }),
    'adapter_model.safetensors': serializeSafetensors(tensors, { format: 'pt' }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string' && item.length > 0);
}

/** PEFT writes unused options as null, {} or []. */
function isNonEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'string' || Array.isArray(value)) return value.length > 0;
  return !isRecord(value) || Object.keys(value).length > 0;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
