import { defineConfig } from '@playwright/test';
import { CHROMIUM, NO_GPU_FLAGS, WEBGPU_FLAGS } from './tests/helpers/chromium';

/**
 * End-to-end tests on Debian's Chromium (tests/helpers/chromium.ts). The "no-webgpu" project runs without WebGPU
 * to check the page's advice.
 */
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
      use: { launchOptions: { executablePath: CHROMIUM, args: WEBGPU_FLAGS } },
    },
    {
      name: 'no-webgpu',
      testMatch: /no-webgpu/,
      use: { launchOptions: { executablePath: CHROMIUM, args: NO_GPU_FLAGS } },
    },
  ],
});
