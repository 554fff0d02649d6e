import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GGMLQuantizationType, gguf } from '@huggingface/gguf';
import { beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { loadCheckpoint } from '../../core/checkpoint';
import { randomLora, randomWeights, tinyConfig } from '../../workers/engine/reference/random-model';
import { hone } from '../helpers/hone-cli';
import { llamaGreedy } from '../helpers/llama-cpp';
import { tempDir, writeAdapterFolder, writeModelFolder } from '../helpers/model-folder';

const HONE_TINY = new URL('../../public/models/hone-tiny', import.meta.url).pathname;

let dir: string;
let adapter: string;

const read = (path: string) => gguf(path, { allowLocalFile: true });

beforeAll(async () => {
  dir = await tempDir('hone-export-gguf-');
  const config = (await loadCheckpoint(folderReader(HONE_TINY), 'hone-tiny')).config;
  const targets = ['q_proj', 'k_proj', 'v_proj'] as const;
  adapter = await writeAdapterFolder(join(dir, 'adapter'), randomLora(config, [...targets], 4, 8, false, 3), [
    ...targets,
  ]);
});

describe('hone export', () => {
  it('writes the base model as f16 GGUF by default, with progress on stderr', async () => {
    const out = join(dir, 'base.gguf');
    const result = await hone('export', '--model', 'hone-tiny', '--format', 'gguf', '--out', out);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/writing tensor 38\/38/);
    expect(result.stderr).toMatch(
      /wrote the model \(llama, f16, pre-tokenizer gpt-2, recognized from tokenizer\.json\)/,
    );
    const { metadata, tensorInfos } = await read(out);
    expect(metadata).toMatchObject({
      'general.architecture': 'llama',
      'general.name': 'hone-tiny',
      'general.file_type': 1,
      'tokenizer.ggml.model': 'gpt2',
    });
    expect(tensorInfos).toHaveLength(38);
    expect(tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')?.dtype).toBe(GGMLQuantizationType.F16);
    await expect(access(`${out}.partial`)).rejects.toThrow();
  });

  it('folds the adapter in (q8_0), or writes it alone as a LoRA GGUF that llama.cpp applies like the merged file', async () => {
    const merged = join(dir, 'merged.gguf');
    const mergedRun = await hone(
      'export',
      '--model',
      'hone-tiny',
      '--adapter',
      adapter,
      '--format',
      'gguf',
      '--out',
      merged,
      '--dtype',
      'q8_0',
    );
    expect(mergedRun.code, mergedRun.stderr).toBe(0);
    const mergedFile = await read(merged);
    expect(mergedFile.metadata).toMatchObject({ 'general.file_type': 7, 'general.name': 'adapter' });
    expect(mergedFile.tensorInfos.find((t) => t.name === 'blk.3.attn_v.weight')?.dtype).toBe(GGMLQuantizationType.Q8_0);

    const lora = join(dir, 'lora.gguf');
    const loraRun = await hone(
      'export',
      '--model',
      'hone-tiny',
      '--adapter',
      adapter,
      '--format',
      'gguf-lora',
      '--out',
      lora,
      '--dtype',
      'f32',
    );
    expect(loraRun.code, loraRun.stderr).toBe(0);
    expect(loraRun.stderr).toMatch(/the LoRA adapter \(12 modules, rank 4, f32\)/);
    expect(loraRun.stderr).toContain(`--lora ${lora}`);
    const loraFile = await read(lora);
    expect(loraFile.metadata).toMatchObject({
      'general.type': 'adapter',
      'adapter.type': 'lora',
      'adapter.lora.alpha': 8,
    });
    expect(loraFile.tensorInfos).toHaveLength(24);

    // The adapter over the base, in llama.cpp, continues as the merged model does (both f32 here).
    const base = join(dir, 'base-f32.gguf');
    const mergedF32 = join(dir, 'merged-f32.gguf');
    expect(
      (await hone('export', '--model', 'hone-tiny', '--format', 'gguf', '--out', base, '--dtype', 'f32')).code,
    ).toBe(0);
    expect(
      (
        await hone(
          'export',
          '--model',
          'hone-tiny',
          '--adapter',
          adapter,
          '--format',
          'gguf',
          '--out',
          mergedF32,
          '--dtype',
          'f32',
        )
      ).code,
    ).toBe(0);
    const prompt = [279, 1093, 259, 530];
    const viaLora = await llamaGreedy(base, prompt, 6, 4096, { lora, kvCache: 'F32' });
    const viaMerge = await llamaGreedy(mergedF32, prompt, 6, 4096, { kvCache: 'F32' });
    expect(viaLora.ids).toEqual(viaMerge.ids);
    expect(viaMerge.ids).not.toEqual((await llamaGreedy(base, prompt, 6, 4096, { kvCache: 'F32' })).ids);
  });

  it('says what is wrong with bad input, and leaves no file behind', async () => {
    const out = join(dir, 'bad.gguf');
    const wrongModel = await writeAdapterFolder(
      join(dir, 'other-adapter'),
      randomLora(tinyConfig(), ['q_proj'], 2, 4, false, 1),
      ['q_proj'],
    );
    const mismatch = await hone(
      'export',
      '--model',
      'hone-tiny',
      '--adapter',
      wrongModel,
      '--format',
      'gguf',
      '--out',
      out,
    );
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(
      /adapter_model\.safetensors: tensor .* has shape .* \(an adapter for a different model\?\)/,
    );

    const config = tinyConfig();
    const bare = await writeModelFolder(join(dir, 'no-tokenizer'), config, randomWeights(config, 1));
    const noTokenizer = await hone('export', '--model', bare, '--format', 'gguf', '--out', out);
    expect(noTokenizer.code).toBe(1);
    expect(noTokenizer.stderr).toContain(`hone: ${bare}: no tokenizer.json`);

    const gpt2 = join(dir, 'gpt2');
    await writeModelFolder(gpt2, config, randomWeights(config, 1));
    const json = JSON.parse(await readFile(join(gpt2, 'config.json'), 'utf8'));
    await writeFile(join(gpt2, 'config.json'), JSON.stringify({ ...json, model_type: 'gpt2' }));
    const unsupported = await hone('export', '--model', gpt2, '--format', 'gguf', '--out', out);
    expect(unsupported.stderr).toMatch(
      /gpt2\/config\.json: model_type "gpt2" .*is not supported; supported: llama, qwen2, qwen3/,
    );

    const q8Lora = await hone(
      'export',
      '--model',
      'hone-tiny',
      '--adapter',
      adapter,
      '--format',
      'gguf-lora',
      '--out',
      out,
      '--dtype',
      'q8_0',
    );
    expect(q8Lora.stderr).toMatch(/gguf-lora takes --dtype f32 or f16/);
    const noAdapter = await hone('export', '--model', 'hone-tiny', '--format', 'gguf-lora', '--out', out);
    expect(noAdapter.stderr).toMatch(/name it with --adapter/);
    const format = await hone('export', '--model', 'hone-tiny', '--format', 'onnx', '--out', out);
    expect(format.stderr).toMatch(/--format onnx is not one hone exports; choose gguf or gguf-lora/);
    const folder = await hone(
      'export',
      '--model',
      'hone-tiny',
      '--format',
      'gguf',
      '--out',
      join(dir, 'none', 'x.gguf'),
    );
    expect(folder.stderr).toContain(`hone: cannot write ${join(dir, 'none', 'x.gguf')}: no such folder`);
    for (const result of [unsupported, q8Lora, noAdapter, format, folder]) expect(result.code).toBe(1);
    await expect(access(out)).rejects.toThrow();

    const help = await hone('export', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--dtype TYPE .*\(default:\s+f16\)/s);
  });
});
