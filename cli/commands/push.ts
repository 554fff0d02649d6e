import { openAsBlob } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type PublishProgress, publishToHub } from '../../core/hub-publish';
import { minimalModelCard, type PublishedKind } from '../../core/hub-publish-card';
import type { Command } from '../command';
import { hubOptionsFromEnv } from '../model-source';

/**
 * `hone push`: a run's result, an adapter, a model or a .gguf file published to a Hub model repo, created when it
 * does not exist, through core/hub-publish.ts (the studio's path). HONE_HUB_URL and HF_TOKEN as for downloads.
 */
export const push: Command = {
  usage: 'hone push PATH --repo ORG/NAME [--private] [--message TEXT]',
  summary:
    'Publishes to a Hub model repo (created when it does not exist): a run folder (hone train --out: its adapter or ' +
    'model, model card and metrics), an adapter folder, a model folder, or a .gguf file. Needs HF_TOKEN with write permission; run it again to finish a cut upload.',
  flags: {
    repo: { value: 'ORG/NAME', help: 'the repo to publish to, under your name or an organization of yours' },
    private: { help: 'create the repo private (a repo that exists keeps its visibility)' },
    message: { value: 'TEXT', help: "the commit's title", default: 'Upload N files with Hone' },
    readme: { value: 'FILE', help: 'the model card to publish as README.md (a minimal one when there is none)' },
  },
  positionals: true,
  async run({ values, positionals }) {
    const repo = values.repo as string | undefined;
    if (positionals.length !== 1 || !repo) throw new Error(`usage: ${push.usage}`);
    const [path] = positionals;
    const found = await pushedFiles(path, repo, values.readme as string | undefined);
    const { baseUrl, token } = hubOptionsFromEnv();
    const bytes = [...found.files.values()].reduce((sum, blob) => sum + blob.size, 0);
    log(`pushing ${found.what} in ${path} (${found.files.size} files, ${megabytes(bytes)}) to ${repo} at ${baseUrl}`);
    const progress = new ProgressLine();
    try {
      const result = await publishToHub({
        repo,
        private: Boolean(values.private),
        token,
        hubUrl: baseUrl,
        files: found.files,
        commitTitle: values.message as string | undefined,
        onProgress: (p) => progress.show(p),
      });
      progress.end();
      const made = result.created ? `a new ${values.private ? 'private' : 'public'} repo` : 'updated';
      log(`pushed ${found.files.size} files to ${repo} (${made}, commit ${result.commit.slice(0, 7)})`);
      process.stdout.write(`${result.url}\n`);
      return 0;
    } finally {
      progress.end();
    }
  },
};

/** The files PATH stands for, by their names in the repo, and what they are in words. */
async function pushedFiles(
  path: string,
  repo: string,
  readme: string | undefined,
): Promise<{ what: string; files: Map<string, Blob> }> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new Error(`${path}: no such file or folder`);
  const files = new Map<string, Blob>();
  let kind: PublishedKind;
  let what: string;
  let baseModel: string | undefined;
  if (info.isFile()) {
    if (!path.toLowerCase().endsWith('.gguf')) throw new Error(`${path}: ${NOT_PUSHABLE}`);
    files.set(basename(path), await openAsBlob(path));
    kind = 'gguf';
    what = 'the GGUF file';
  } else {
    const names = await topLevelFiles(path);
    const isRun = await isFolder(join(path, 'checkpoint'));
    if (names.includes('adapter_config.json')) {
      if (!names.some((n) => /^adapter_model\.(safetensors|bin)$/.test(n))) {
        throw new Error(`${path} has adapter_config.json but no adapter_model.safetensors beside it`);
      }
      kind = 'adapter';
      baseModel = adapterBase(await readFile(join(path, 'adapter_config.json'), 'utf8'));
    } else if (isModelFolder(names)) {
      kind = 'model';
    } else if (isRun) {
      throw new Error(
        `${path} holds a run that has not finished: no adapter or model in it yet (finish it with hone train --out ${path} --resume)`,
      );
    } else {
      throw new Error(`${path}: ${NOT_PUSHABLE}`);
    }
    for (const name of names) files.set(name, await openAsBlob(join(path, name)));
    what = `${isRun ? "the run's " : 'the '}${kind === 'adapter' ? 'adapter' : 'model'}`;
  }
  if (readme) {
    const card = await stat(readme).catch(() => null);
    if (!card?.isFile()) throw new Error(`--readme ${readme}: no such file`);
    files.set('README.md', await openAsBlob(readme));
  } else if (!files.has('README.md')) {
    const title = repo.split('/').at(-1) ?? repo;
    const card = minimalModelCard({ kind, title, files: [...files.keys()], baseModel });
    files.set('README.md', new Blob([card]));
  }
  return { what, files };
}

const NOT_PUSHABLE =
  'not something hone push publishes: give a run folder (hone train --out), an adapter folder (adapter_config.json), ' +
  'a model folder (config.json and .safetensors) or a .gguf file';

/** The folder's files (not its folders, nor hidden files), sorted. */
async function topLevelFiles(dir: string): Promise<string[]> {
  const entries = await readdir(resolve(dir), { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

function isModelFolder(names: string[]): boolean {
  return names.includes('config.json') && names.some((n) => n.endsWith('.safetensors'));
}

async function isFolder(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

function adapterBase(configText: string): string | undefined {
  try {
    const base = (JSON.parse(configText) as { base_model_name_or_path?: unknown }).base_model_name_or_path;
    return typeof base === 'string' ? base : undefined;
  } catch {
    return undefined;
  }
}

/** One progress line on stderr, redrawn: checking, hashing, uploading (files on the Hub of all), committing. */
class ProgressLine {
  private open = false;

  show(p: PublishProgress): void {
    const fraction = p.fraction === undefined ? '' : ` ${Math.floor(100 * p.fraction)}%`;
    const text =
      p.stage === 'checking'
        ? 'checking the token and the repo'
        : p.stage === 'hashing'
          ? `hashing ${p.file}${fraction}`
          : p.stage === 'uploading'
            ? `uploading: ${p.uploaded} of ${p.total} files on the Hub (${p.file}${fraction})`
            : `committing ${p.total} files`;
    process.stderr.write(`\r${text.padEnd(100)}`);
    this.open = true;
  }

  end(): void {
    if (this.open) process.stderr.write('\n');
    this.open = false;
  }
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}
