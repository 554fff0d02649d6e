import { cache } from './commands/cache';
import { GENERATE_USAGE, generate } from './commands/generate';
import { gpuInfo } from './commands/gpu-info';
import { GRADS_USAGE, grads } from './commands/grads';
import { INSPECT_USAGE, inspect } from './commands/inspect';
import { MERGE_USAGE, merge } from './commands/merge';
import { TRAIN_USAGE, train } from './commands/train';

const USAGE = `hone — LoRA fine-tuning on WebGPU

Usage:
  hone gpu-info     print the WebGPU adapter as JSON and verify a kernel on it
  ${GRADS_USAGE}
                    one forward + backward pass of the engine; writes the loss and the gradients
                    of every adapter tensor (and with --full every base weight) as safetensors
  ${INSPECT_USAGE}
                    what Hone makes of dataset files: the format, every bad record with its line,
                    and with --model the token lengths under the model's chat template
  ${TRAIN_USAGE}
                    fine-tunes on a dataset: a PEFT adapter (or with --full the model), metrics.jsonl
                    and a resumable checkpoint in DIR; 'hone train' alone lists the settings
  ${GENERATE_USAGE}
                    an answer from the model (with --adapter, the tuned model), streamed; 'hone generate'
                    alone lists the sampling options
  ${MERGE_USAGE}
                    the adapter folded into the weights: a model folder that loads without PEFT
  hone cache [list | clear [PREFIX]]
                    the models downloaded from the Hub (HONE_CACHE_DIR, default ~/.cache/hone)
  hone help         this text

A model DIR may be hone-tiny (the small model Hone ships), and a model or adapter DIR may be
hub:ORG/NAME[@REVISION]: fetched from HONE_HUB_URL (default the Hugging Face Hub; HF_TOKEN for gated models)
into the cache.
`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  'gpu-info': gpuInfo,
  grads,
  inspect,
  train,
  generate,
  merge,
  cache,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const helpFlag = (arg: string) => arg === '--help' || arg === '-h';
  // `hone train --help` as well as `hone --help`: the usage names each command's options.
  if (!name || name === 'help' || helpFlag(name) || args.some(helpFlag)) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`hone: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  return command(args);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`hone: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
