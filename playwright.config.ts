import { defineConfig } from '@playwright/test';

/**
 * End-to-end tests on Debian's Chromium (browser downloads are impossible here, and it is the browser the
 * notes measured). WebGPU needs --enable-unsafe-webgpu on Linux; without it navigator.gpu has no adapter,
 * which the "no-webgpu" project uses to check the page's advice.
 */
const CHROMIUM = process.env.HONE_CHROMIUM ?? '/usr/bin/chromium';
const QUIET_FLAGS = [
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const PORT = 4173;

export default defineConfig({
  testDir: 'tests/e2e',
  outputDir: 'test-results/e2e',
  timeout: 120_000,
  expect: { timeout: 60_000 },
  workers: 1,
  reporter: [['list']],
  use: { baseURL: `http://127.0.0.1:${PORT}`, trace: 'retain-on-failure' },
  webServer: {
    command: `npx vite build --logLevel warn && npx vite preview --host 127.0.0.1 --port ${PORT} --strictPort`,
    url: `http://127.0.0.1:${PORT}`,
    reuseExistingServer: false,
    timeout: 180_000,
  },
  projects: [
    {
      name: 'webgpu',
      testIgnore: /no-webgpu/,
      use: { launchOptions: { executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu', ...QUIET_FLAGS] } },
    },
    {
      name: 'no-webgpu',
      testMatch: /no-webgpu/,
      use: { launchOptions: { executablePath: CHROMIUM, args: ['--disable-gpu', ...QUIET_FLAGS] } },
    },
  ],
});
