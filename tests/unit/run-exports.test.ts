/**
 * The Export step's GGUF and Publish, through the engine session the studio's worker runs: the GGUF a run's zip
 * carries is byte for byte what `hone export` writes from the run's exported adapter (the file llama.cpp is checked
 * on in gguf-llama.test.ts), and what Publish sends reaches the Hub stand-in byte for byte.
 */
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderReader } from '../../cli/folder';
import { acquireNodeGpu } from '../../cli/node-gpu';
import { loadAdapter, loadCheckpoint } from '../../core/checkpoint';
import { type GgufPlan, loraGgufPlan, mergeAdapterOf, modelGgufPlan, writeGguf } from '../../core/export/gguf';
import { parseSafetensors } from '../../core/safetensors';
import type { Gpu } from '../../workers/engine/gpu/device';
import { filesReader } from '../../workers/engine/model-loader';
import type { GgufRequest } from '../../workers/engine/run-exports';
import { EngineSession } from '../../workers/engine/session';
import { capitalsJsonl } from '../helpers/datasets';
import { type HubServer, startHubServer } from '../helpers/hub-server';
import { tinyRunSettings } from '../helpers/trainer-runs';

const FOLDER = 'public/models/hone-tiny';
const read = folderReader(FOLDER);
const dataset = [
  {
    name: 'capitals.jsonl',
    blob: new Blob([
      capitalsJsonl([
        ['What is the capital of France?', 'Paris.'],
        ['What is the capital of Peru?', 'Lima.'],
      ]),
    ]),
  },
];

let gpu: Gpu | undefined;
let hub: HubServer;
/** Scratch files in memory, the last one's fate recorded; `failAfter` makes a write past that many bytes fail. */
const scratch = { failAfter: Number.POSITIVE_INFINITY, last: '' };
const session = new EngineSession({
  acquire: async () => {
    gpu = await acquireNodeGpu();
    return gpu;
  },
  scratch: async (name) => {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    let bytes = 0;
    scratch.last = `${name} open`;
    return {
      write: async (chunk) => {
        bytes += chunk.length;
        if (bytes > scratch.failAfter) throw new Error('the disk is full');
        parts.push(chunk as Uint8Array<ArrayBuffer>);
      },
      close: async () => {
        scratch.last = `${name} closed`;
        return new Blob(parts);
      },
      abort: async () => {
        scratch.last = `${name} aborted`;
      },
    };
  },
});

beforeAll(async () => {
  hub = await startHubServer();
  hub.users.set('hf_write', { name: 'me', role: 'write' });
  await session.loadFrom(read, 'hone-tiny');
});
afterAll(async () => {
  gpu?.device.destroy();
  await hub.close();
});

async function train(full: boolean): Promise<void> {
  const settings = tinyRunSettings('sft', { maxSteps: 2, seqLen: 48, full, lr: full ? 1e-3 : 0.01 });
  const request = { model: 'hone-tiny', settings, data: { validation: 0, trainOnPrompt: false } };
  await session.startTraining(request, dataset, () => {});
}

async function bytesOf(plan: GgufPlan): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeGguf(plan, (chunk) => void chunks.push(chunk));
  return new Uint8Array(await new Blob(chunks as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

/** The zip's files by name, the wrapping folder taken off. */
async function unzipped(zip: Blob): Promise<Map<string, Uint8Array>> {
  const files = unzipSync(new Uint8Array(await zip.arrayBuffer()));
  return new Map(Object.entries(files).map(([path, bytes]) => [path.split('/').slice(1).join('/'), bytes]));
}

/** Whether the Hub stand-in holds exactly these bytes as the repo's file. */
async function onHub(repo: string, name: string, bytes: Uint8Array | undefined): Promise<boolean> {
  const response = await fetch(`${hub.url}/${repo}/resolve/main/${name}`, {
    headers: { Authorization: 'Bearer hf_write' },
  });
  expect(response.status, name).toBe(200);
  return bytes !== undefined && Buffer.from(await response.arrayBuffer()).equals(bytes);
}

describe("a run's GGUF and Publish", () => {
  it('zips the GGUF hone export writes from the run’s adapter (merged, alone, the base) with a Modelfile', async () => {
    await train(false);
    const adapterFiles = await unzipped((await session.exports.adapterZip('run')).zip);
    const checkpoint = await loadCheckpoint(read, 'hone-tiny');
    const adapterRead = filesReader(
      [...adapterFiles].map(([path, bytes]) => ({ path, file: new Blob([bytes as Uint8Array<ArrayBuffer>]) })),
    );
    const adapter = mergeAdapterOf(await loadAdapter(adapterRead, 'adapter', checkpoint.config));

    const expected: [GgufRequest, (name: string) => Promise<GgufPlan>][] = [
      [
        { which: 'run', kind: 'merged', dtype: 'f32' },
        (name) => modelGgufPlan(checkpoint, read, { dtype: 'f32', name, source: 'hone-tiny', adapter }),
      ],
      [
        { which: 'run', kind: 'lora', dtype: 'f16' },
        async (name) => loraGgufPlan(checkpoint.config, adapter, { dtype: 'f16', name }),
      ],
      [
        { which: 'run', kind: 'base', dtype: 'q8_0' },
        (name) => modelGgufPlan(checkpoint, read, { dtype: 'q8_0', name, source: 'hone-tiny' }),
      ],
    ];
    for (const [request, plan] of expected) {
      const progress: number[] = [];
      const zip = await session.exports.ggufZip(request, (p) => progress.push(p.bytesDone));
      const files = await unzipped(zip.zip);
      const name = zip.fileName.replace(/\.zip$/, '');
      expect([...files.keys()]).toEqual([`${name}.gguf`, 'Modelfile', 'README.md']);
      const want = await plan(name);
      const gguf = files.get(`${name}.gguf`) as Uint8Array;
      expect(gguf.length).toBe(await session.exports.ggufBytes(request));
      expect(Buffer.from(gguf).equals(Buffer.from(await bytesOf(want))), request.kind).toBe(true);
      expect(progress.at(-1)).toBe(gguf.length);
      const modelfile = new TextDecoder().decode(files.get('Modelfile'));
      if (request.kind === 'lora') {
        expect(modelfile).toMatch(/^FROM \.\/hone-tiny-f16\.gguf\nADAPTER \.\/hone-tiny-sft-step2-lora-f16\.gguf\n/);
      } else expect(modelfile.startsWith(`FROM ./${name}.gguf\n\nTEMPLATE """`)).toBe(true);
      expect(modelfile).toContain('PARAMETER stop "<|im_end|>"');
    }
    await expect(session.exports.ggufZip({ which: 'run', kind: 'lora', dtype: 'q8_0' })).rejects.toThrow(
      'A LoRA GGUF keeps its matrices in f32 or f16',
    );

    // A write that fails midway (a full disk) lets the file go, and says why.
    scratch.failAfter = 100_000;
    await expect(session.exports.ggufZip({ which: 'run', kind: 'merged', dtype: 'f16' })).rejects.toThrow(
      'the disk is full',
    );
    expect(scratch.last).toBe('hone-tiny-sft-step2-f16.zip aborted');
    scratch.failAfter = Number.POSITIVE_INFINITY;
  });

  it('publishes the adapter, the tuned model and a GGUF, byte for byte; a name alone goes to the token’s account', async () => {
    const settings = { baseUrl: hub.url, token: 'hf_write' };
    const adapter = await unzipped((await session.exports.adapterZip('run')).zip);
    const published = await session.exports.publish(
      { which: 'run', what: 'adapter', repo: 'tuned', private: true },
      settings,
    );
    expect(published.url).toBe(`${hub.url}/me/tuned`);
    for (const [name, bytes] of adapter) expect(await onHub('me/tuned', name, bytes), name).toBe(true);

    const merged = await unzipped((await session.exports.mergedZip('run')).zip);
    await session.exports.publish({ which: 'run', what: 'merged', repo: 'me/merged', private: true }, settings);
    for (const [name, bytes] of merged) expect(await onHub('me/merged', name, bytes), name).toBe(true);
    const card = await fetch(`${hub.url}/me/merged/resolve/main/README.md`, {
      headers: { Authorization: 'Bearer hf_write' },
    });
    expect(await card.text()).toContain('library_name: transformers');

    const gguf = { kind: 'merged', dtype: 'q8_0' } as const;
    const zip = await session.exports.ggufZip({ which: 'run', ...gguf });
    const zipped = await unzipped(zip.zip);
    const stages = new Set<string>();
    await session.exports.publish(
      { which: 'run', what: 'gguf', gguf, repo: 'me/gguf', private: false },
      settings,
      (p) => stages.add(p.gguf ? 'gguf' : (p.upload?.stage ?? '')),
    );
    for (const name of [`${zip.fileName.replace(/\.zip$/, '')}.gguf`, 'Modelfile']) {
      expect(await onHub('me/gguf', name, zipped.get(name)), name).toBe(true);
    }
    expect(stages).toContain('gguf');
    expect(stages).toContain('committing');
  });

  it("a full run's GGUF holds its trained weights", async () => {
    await train(true);
    const merged = await unzipped((await session.exports.mergedZip('run')).zip);
    const trained = parseSafetensors(merged.get('model.safetensors') as Uint8Array, 'the export');
    const checkpoint = await loadCheckpoint(read, 'hone-tiny');
    const weights = { ...checkpoint, readFloat32: async (key: string) => trained.readFloat32(key) };
    const zip = await session.exports.ggufZip({ which: 'run', kind: 'merged', dtype: 'f32' });
    const name = zip.fileName.replace(/\.zip$/, '');
    const want = await modelGgufPlan(weights, read, { dtype: 'f32', name, source: 'hone-tiny' });
    const got = (await unzipped(zip.zip)).get(`${name}.gguf`) as Uint8Array;
    expect(Buffer.from(got).equals(Buffer.from(await bytesOf(want)))).toBe(true);
    await expect(session.exports.ggufZip({ which: 'run', kind: 'lora', dtype: 'f32' })).rejects.toThrow(
      'it has no adapter to export alone',
    );
  });
});
