/**
 * The zip reader (core/export/unzip-folder.ts): honest zips read byte for byte, lazily; zip bombs and lying
 * headers refused after kilobytes, naming the zip and the entry (issue 26, item 10).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inflate, strToU8, zipSync } from 'fflate';
import { describe, expect, it, vi } from 'vitest';
import { modelSource } from '../../cli/model-source';
import { adapterFolderFiles, zipAdapterFolder } from '../../core/export/adapter-folder';
import {
  DEFLATE,
  entryCap,
  expandZip,
  openZip,
  pickedFilesReader,
  STORED,
  unzipFolder,
} from '../../core/export/unzip-folder';
import { PROJECTIONS, projectionShape } from '../../core/model-config';
import { defaultSettings } from '../../core/training/settings';
import { tinyConfig } from '../../workers/engine/reference/random-model';
import { tempDir } from '../helpers/model-folder';
import { deflated, type RawEntry, safetensorsHead, stored, writeZip, zerosDeflate } from '../helpers/zip-fixtures';

const GiB = 2 ** 30;
const KB64 = 64 * 1024;
const blob = (bytes: Uint8Array) => new Blob([bytes as Uint8Array<ArrayBuffer>]);
const bytesOf = async (file: Blob) => new Uint8Array(await file.arrayBuffer());
/** Byte equality without vitest's element-by-element diff, which takes minutes on megabytes. */
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

function adapterExport(name: string) {
  const config = tinyConfig();
  const modules = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const projection of PROJECTIONS) {
      const [out, inner] = projectionShape(config, projection);
      const A = Float32Array.from({ length: 3 * inner }, (_, i) => Math.sin(layer + i));
      const B = Float32Array.from({ length: out * 3 }, (_, i) => Math.cos(layer - i));
      modules.set(`${layer}.${projection}`, { A, B });
    }
  }
  const settings = { ...defaultSettings('sft', 1000), loraR: 3 };
  return { name, baseModel: 'hone/tiny', settings, modules, data: null, metrics: [] };
}

/**
 * Runs `work` with fflate's Inflate allowed `budget` compressed bytes in all: past them it throws, so a bomb the
 * reader failed to stop fails the test at once rather than inflating gigabytes. `pushed` says how many it took: a
 * bomb refused within kilobytes of compressed input produced at most ~1000 times that (deflate's largest ratio),
 * megabytes of the gigabytes it declares.
 */
async function withBudget<T>(budget: number, work: () => Promise<T>) {
  const original = Inflate.prototype.push;
  let pushed = 0;
  const spy = vi.spyOn(Inflate.prototype, 'push').mockImplementation(function (this: Inflate, chunk, final) {
    pushed += chunk.length;
    if (pushed > budget) throw new Error(`the test's budget: ${pushed} compressed bytes pushed`);
    return original.call(this, chunk, final);
  });
  try {
    const [result] = await Promise.allSettled([work()]);
    return { pushed, result };
  } finally {
    spy.mockRestore();
  }
}

function reason(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') throw new Error('expected a refusal, got a result');
  return (result.reason as Error).message;
}

describe('an honest zip', () => {
  it("round-trips the studio's exported adapter byte for byte, stored entries as slices", async () => {
    const e = adapterExport('my-adapter');
    const zip = await zipAdapterFolder(e);
    const expected = adapterFolderFiles(e);
    const entries = await openZip(zip, 'my-adapter.zip');
    expect(entries.map((entry) => entry.path).sort()).toEqual(Object.keys(expected).sort());
    for (const entry of entries) {
      expect(entry.name).toBe(`my-adapter/${entry.path}`);
      expect(entry.method).toBe(STORED);
      expect(entry.size).toBe(expected[entry.path].length);
      expect(entry.compressedSize).toBe(entry.size);
      expect(same(await bytesOf(await entry.file()), expected[entry.path])).toBe(true);
    }
    const files = await unzipFolder(new Uint8Array(await zip.arrayBuffer()), 'my-adapter.zip');
    expect(files.map((f) => f.path).sort()).toEqual(Object.keys(expected).sort());
  });

  it('reads deflated and stored entries of one zip byte for byte, a deflated safetensors checked as it goes', async () => {
    const files = adapterFolderFiles(adapterExport('x'));
    const zip = zipSync({
      'adapter_config.json': [files['adapter_config.json'], { level: 0 }],
      'adapter_model.safetensors': [files['adapter_model.safetensors'], { level: 9 }],
      'README.md': [files['README.md'], { level: 6 }],
      'empty.txt': [new Uint8Array(0), { level: 6 }],
    });
    const entries = await openZip(blob(zip), 'mixed.zip');
    const methods = Object.fromEntries(entries.map((entry) => [entry.path, entry.method]));
    expect(methods).toEqual({
      'adapter_config.json': STORED,
      'adapter_model.safetensors': DEFLATE,
      'README.md': DEFLATE,
      'empty.txt': DEFLATE,
    });
    const byPath = await expandZip([{ path: 'mixed.zip', file: blob(zip) }]);
    for (const { path, file } of byPath) {
      expect(same(await bytesOf(file), path === 'empty.txt' ? new Uint8Array(0) : files[path])).toBe(true);
    }
  });

  it('reads a large deflated entry in pieces, whole and exact', async () => {
    // 12 MiB that compress like weights and text (about 2:1), so the inflater's output crosses several Blob parts
    // and its push sizes change near the end.
    const big = new Uint8Array(12 * 2 ** 20);
    let state = 1;
    for (let i = 0; i < big.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      big[i] = i % 3 === 0 ? 0 : state >>> 28;
    }
    const zip = writeZip([deflated('big.bin', big)]);
    const [entry] = await openZip(blob(zip), 'big.zip');
    expect(entry.compressedSize).toBeLessThan(big.length / 1.5);
    expect(same(await bytesOf(await entry.file()), big)).toBe(true);
  });

  it('takes the wrapping folder off, leaves folders and __MACOSX shadows out, keeps two tops as they are', async () => {
    const wrapped = zipSync({
      'folder/': new Uint8Array(0),
      'folder/sub/': new Uint8Array(0),
      'folder/a.json': strToU8('{}'),
      'folder/sub/b.txt': strToU8('b'),
      '__MACOSX/folder/._a.json': strToU8('shadow'),
    });
    const files = await unzipFolder(wrapped, 'wrapped.zip');
    expect(files.map((f) => f.path)).toEqual(['a.json', 'sub/b.txt']);
    expect(await files[1].file.text()).toBe('b');

    const two = zipSync({ 'one/a.json': strToU8('{}'), 'two/b.json': strToU8('{}') });
    expect((await unzipFolder(two, 'two.zip')).map((f) => f.path)).toEqual(['one/a.json', 'two/b.json']);
  });

  it('reads ZIP64 records: end record, locator, and sizes and offsets in extra fields', async () => {
    const text = strToU8('x'.repeat(5000));
    const zip = writeZip([stored('m/config.json', strToU8('{"a":1}')), deflated('m/notes.txt', text)], {
      zip64: true,
      comment: 'a comment after the end record',
    });
    const entries = await openZip(blob(zip), 'z64.zip');
    expect(entries.map((entry) => [entry.path, entry.method, entry.size])).toEqual([
      ['config.json', STORED, 7],
      ['notes.txt', DEFLATE, 5000],
    ]);
    expect(await (await entries[0].file()).text()).toBe('{"a":1}');
    expect(await bytesOf(await entries[1].file())).toEqual(text);
  });

  it('gives a ReadFile that inflates only what it is asked for', async () => {
    // README.md's header lies (its stream inflates to 1 GiB): reading the config alone never touches it.
    const config = strToU8('{"r": 3}');
    const zip = writeZip([
      deflated('a/adapter_config.json', config),
      { name: 'a/README.md', data: zerosDeflate(1024), method: 8, size: 100 },
    ]);
    const read = await pickedFilesReader([{ path: 'a.zip', file: blob(zip) }]);
    expect(await bytesOf((await read('adapter_config.json')) as Blob)).toEqual(config);
    expect(await read('nothing.json')).toBeNull();
    const { pushed, result } = await withBudget(KB64, () => read('README.md'));
    expect(reason(result)).toMatch(/^a\.zip: a\/README\.md: it inflates past the 100 bytes/);
    expect(pushed).toBeLessThanOrEqual(4096);

    // A folder's files pass through as they are.
    const picked = [{ path: 'f/adapter_config.json', file: blob(config) }];
    expect(await expandZip(picked)).toBe(picked);
    expect(await (await pickedFilesReader(picked))('adapter_config.json')).toBe(picked[0].file);
  });
});

describe('a zip that cannot be read', () => {
  it('refuses a non-zip and a truncated zip by name', async () => {
    await expect(openZip(blob(strToU8('not a zip at all')), 'junk.zip')).rejects.toThrow(
      /^junk\.zip: not a zip file that can be read \(no end of central directory record/,
    );
    const zip = new Uint8Array(await (await zipAdapterFolder(adapterExport('t'))).arrayBuffer());
    await expect(openZip(blob(zip.subarray(0, zip.length - 10)), 'cut.zip')).rejects.toThrow(
      /^cut\.zip: not a zip file that can be read/,
    );
    // Cut in the middle, its end record kept: the directory now points past the data.
    const middle = new Uint8Array([...zip.subarray(0, 1000), ...zip.subarray(zip.length - 200)]);
    await expect(openZip(blob(middle), 'middle.zip')).rejects.toThrow(/^middle\.zip: not a zip file that can be read/);
    await expect(unzipFolder(new Uint8Array(0), 'empty.zip')).rejects.toThrow(/^empty\.zip: not a zip file/);
  });

  it('refuses a zip with no files', async () => {
    await expect(openZip(blob(zipSync({ 'folder/': new Uint8Array(0) })), 'dirs.zip')).rejects.toThrow(
      'dirs.zip: the zip holds no files',
    );
  });

  it('refuses methods other than stored and deflate, and encryption, naming the entry', async () => {
    const bzip2: RawEntry = { ...stored('a/weights.bin', new Uint8Array(10)), method: 12 };
    await expect(openZip(blob(writeZip([bzip2])), 'b.zip')).rejects.toThrow(
      'b.zip: a/weights.bin: it is compressed with method 12 (bzip2); only stored (0) and deflate (8) can be read',
    );
    const secret: RawEntry = { ...stored('a/config.json', new Uint8Array(10)), flags: 0x801 };
    await expect(openZip(blob(writeZip([secret])), 'e.zip')).rejects.toThrow('e.zip: a/config.json: it is encrypted');
  });

  it('refuses entries sharing bytes (the overlapping-entries bomb)', async () => {
    const zip = writeZip([stored('one.txt', strToU8('hello world'))]);
    // A second central directory entry pointing at the first one's local header and data.
    const view = new DataView(zip.buffer);
    const end = zip.length - 22;
    const directoryOffset = view.getUint32(end + 16, true);
    const entry = zip.slice(directoryOffset, end);
    entry.set(strToU8('two.txt'), 46); // named two.txt, at the same offset
    const doubled = new Uint8Array([...zip.subarray(0, end), ...entry, ...zip.subarray(end)]);
    const doubledView = new DataView(doubled.buffer);
    const newEnd = doubled.length - 22;
    doubledView.setUint16(newEnd + 8, 2, true);
    doubledView.setUint16(newEnd + 10, 2, true);
    doubledView.setUint32(newEnd + 12, 2 * entry.length, true);
    await expect(openZip(blob(doubled), 'overlap.zip')).rejects.toThrow(/^overlap\.zip: .*overlaps the next entry's/);
  });
});

describe('a zip bomb', () => {
  it('declaring gigabytes from megabytes is refused from its directory alone', async () => {
    // 4 GiB of zeros from 4 MB: the ratio no real file reaches.
    const zip = writeZip(
      [
        deflated('bomb/adapter_config.json', strToU8('{}')),
        { name: 'bomb/adapter_model.safetensors', data: zerosDeflate(4096), method: 8, size: 4 * GiB },
      ],
      { zip64: true },
    );
    const { pushed, result } = await withBudget(0, () => openZip(blob(zip), 'bomb.zip'));
    expect(reason(result)).toMatch(
      /^bomb\.zip: bomb\/adapter_model\.safetensors: it declares 4294967296 bytes \(4\.0 GiB\) from .* compressed \(\d+:1\), past the 100:1/,
    );
    expect(pushed).toBe(0);
  });

  it('is refused when a declared size passes its kind of file, or a cap passed in', async () => {
    const config = stored('a/adapter_config.json', strToU8(' '.repeat(2 ** 20 + 1)));
    await expect(openZip(blob(writeZip([config])), 'big.zip')).rejects.toThrow(
      'big.zip: a/adapter_config.json: it declares 1048577 bytes (1.0 MiB), over the 1048576 bytes (1.0 MiB) a config file can be',
    );
    expect(entryCap('x/tokenizer.json').bytes).toBe(64 * 2 ** 20);
    expect(entryCap('x/tokenizer_config.json').kind).toBe('tokenizer file');
    expect(entryCap('model-00001-of-00002.safetensors').bytes).toBe(64 * GiB);
    expect(entryCap('README.md').kind).toBe('file');
    const readme = deflated('README.md', strToU8('a'.repeat(5000)));
    await expect(openZip(blob(writeZip([readme])), 'small.zip', { maxEntryBytes: 4096 })).rejects.toThrow(
      'small.zip: README.md: it declares 5000 bytes, over the 4096 bytes a file can be',
    );
  });

  it('whose safetensors header describes far less than the entry is refused after reading the header', async () => {
    // The header says 16 bytes of data; the entry declares (and its stream inflates to) 16 GiB. The ratio check is
    // lifted so the header check is what refuses it.
    const zip = writeZip(
      [
        {
          name: 'bomb/adapter_model.safetensors',
          data: zerosDeflate(16384, safetensorsHead(4)),
          method: 8,
          size: 16 * GiB,
        },
      ],
      { zip64: true },
    );
    const [entry] = await openZip(blob(zip), 'bomb.zip', { maxRatio: Number.POSITIVE_INFINITY });
    const { pushed, result } = await withBudget(KB64, () => entry.file());
    expect(reason(result)).toMatch(
      /^bomb\.zip: bomb\/adapter_model\.safetensors: the last \d+ bytes of data belong to no tensor/,
    );
    expect(pushed).toBeLessThanOrEqual(2048);

    // The issue's own bomb: nothing but zeros, so a header length of 0.
    const zeros = writeZip(
      [{ name: 'adapter_model.safetensors', data: zerosDeflate(16384), method: 8, size: 16 * GiB }],
      {
        zip64: true,
      },
    );
    const [bare] = await openZip(blob(zeros), 'zeros.zip', { maxRatio: Number.POSITIVE_INFINITY });
    const second = await withBudget(KB64, () => bare.file());
    expect(reason(second.result)).toMatch(/^zeros\.zip: adapter_model\.safetensors: header is not a JSON object/);
    expect(second.pushed).toBeLessThanOrEqual(2048);
  });

  it('whose sizes lie is stopped the moment its output passes them', async () => {
    // The header's data (16 bytes) and the declared size agree; the stream goes on for 16 GiB.
    const head = safetensorsHead(4);
    const size = head.length + 16;
    const zip = writeZip([
      deflated('ok/adapter_config.json', strToU8('{}')),
      { name: 'ok/adapter_model.safetensors', data: zerosDeflate(16384, head), method: 8, size },
    ]);
    const entries = await openZip(blob(zip), 'liar.zip');
    const { pushed, result } = await withBudget(KB64, () => entries[1].file());
    expect(reason(result)).toBe(
      `liar.zip: ok/adapter_model.safetensors: it inflates past the ${size} bytes its header declares: the header lies`,
    );
    expect(pushed).toBeLessThanOrEqual(2048);
    expect(await (await entries[0].file()).text()).toBe('{}');

    // A stream shorter than declared is refused too.
    const short = writeZip([{ ...deflated('notes.txt', strToU8('abc')), size: 4 }]);
    await expect((await openZip(blob(short), 's.zip'))[0].file()).rejects.toThrow(
      's.zip: notes.txt: it inflates to 3 bytes, not the 4 its header declares',
    );
  });

  it('whose local header disagrees with the central directory is refused before inflating', async () => {
    const entry: RawEntry = {
      name: 'w/adapter_model.safetensors',
      data: zerosDeflate(4096, safetensorsHead(4)),
      method: 8,
      size: 4 * GiB,
      localSize: 1000,
    };
    const zip = writeZip([entry], { zip64: true });
    const [listed] = await openZip(blob(zip), 'mixed.zip', { maxRatio: Number.POSITIVE_INFINITY });
    const { pushed, result } = await withBudget(KB64, () => listed.file());
    expect(reason(result)).toMatch(
      /^mixed\.zip: w\/adapter_model\.safetensors: its local header says 1000 bytes from \d+ compressed, the central directory 4294967296/,
    );
    expect(pushed).toBe(0);
  });

  it('is refused by `hone --adapter bomb.zip`, read from disk without reading the zip whole', async () => {
    const dir = await tempDir('hone-bomb-');
    const head = safetensorsHead(4);
    const path = join(dir, 'bomb.zip');
    await writeFile(
      path,
      writeZip([
        deflated('bomb/adapter_config.json', strToU8('{"r": 8}')),
        { name: 'bomb/adapter_model.safetensors', data: zerosDeflate(4096, head), method: 8, size: head.length + 16 },
      ]),
    );
    const { read } = modelSource(path);
    expect(await ((await read('adapter_config.json')) as Blob).text()).toBe('{"r": 8}');
    const { pushed, result } = await withBudget(KB64, () => read('adapter_model.safetensors'));
    expect(reason(result)).toContain(
      `bomb.zip: bomb/adapter_model.safetensors: it inflates past the ${head.length + 16} bytes its header declares`,
    );
    expect(pushed).toBeLessThanOrEqual(2048);
    await expect(modelSource(join(dir, 'none.zip')).read('adapter_config.json')).rejects.toThrow(
      'none.zip: no such file',
    );
  });
});
