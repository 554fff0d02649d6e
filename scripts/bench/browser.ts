import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { CHROMIUM, WEBGPU_FLAGS } from '../../tests/helpers/chromium';
import type { BenchOptions, BenchResult } from './measure';

/** Not 4173: the e2e tests' preview server uses that one, and the two may run at once. */
const PORT = 4310;

// An empty icon, or the browser asks for /favicon.ico and logs the 404 among the progress lines.
const PAGE =
  '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>Hone bench</title><script type="module" src="/bench.js"></script>';

/** The page script and the engine it imports as one ES module, in memory. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./page.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'warning',
  });
  return result.outputFiles[0].text;
}

/** The page and its script on 127.0.0.1 (a secure context, as WebGPU requires). */
async function serve(script: string): Promise<Server> {
  const server = createServer((request, response) => {
    const [type, body] =
      request.url === '/bench.js'
        ? ['text/javascript', script]
        : request.url === '/'
          ? ['text/html', PAGE]
          : [null, ''];
    response.writeHead(type ? 200 : 404, type ? { 'content-type': type } : {});
    response.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, '127.0.0.1', resolve);
  });
  return server;
}

/**
 * Runs the bench inside headless Chromium on its WebGPU adapter (SwiftShader on a machine without a GPU) and
 * returns what the page measured; the page's console goes to stderr as progress.
 */
export async function benchInBrowser(options: BenchOptions): Promise<BenchResult> {
  const server = await serve(await bundlePage());
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGPU_FLAGS, headless: true });
  try {
    const page = await browser.newPage();
    page.on('console', (message) => process.stderr.write(`  [page] ${message.text()}\n`));
    const errors: Error[] = [];
    page.on('pageerror', (error) => errors.push(error));
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.waitForFunction(() => typeof window.honeBench === 'function');
    const result = await page.evaluate((o) => window.honeBench(o), options);
    if (errors.length) throw errors[0];
    return { ...result, environment: `Chromium ${browser.version()} headless, ${result.environment}` };
  } finally {
    await browser.close();
    await new Promise((resolve) => server.close(resolve));
  }
}
