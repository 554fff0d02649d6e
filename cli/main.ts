import { type Command, commandHelp, parseCommand, wrap } from './command';
import { cache } from './commands/cache';
import { evalCommand } from './commands/eval';
import { exportCommand } from './commands/export';
import { generate } from './commands/generate';
import { gpuInfo } from './commands/gpu-info';
import { grads } from './commands/grads';
import { inspect } from './commands/inspect';
import { merge } from './commands/merge';
import { push } from './commands/push';
import { train } from './commands/train';

const commands: Record<string, Command> = {
  'gpu-info': gpuInfo,
  inspect,
  train,
  generate,
  merge,
  eval: evalCommand,
  export: exportCommand,
  push,
  grads,
  cache,
};

const USAGE = `hone — LoRA fine-tuning on WebGPU

Usage:
${Object.values(commands)
  .map((c) => `  ${c.usage}\n${wrap(c.summary, 20)}`)
  .join('\n')}
  hone help         this text; hone COMMAND --help lists a command's flags with their defaults

A model M may be hone-tiny (the small model Hone ships), a folder, or hub:ORG/NAME[@REVISION]: fetched from
HONE_HUB_URL (default the Hugging Face Hub; HF_TOKEN for gated models) into the cache.
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const helpFlag = (arg: string) => arg === '--help' || arg === '-h';
  if (!name || name === 'help' || helpFlag(name)) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`hone: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  if (args.some(helpFlag)) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  return command.run(parseCommand(command, args));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`hone: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
