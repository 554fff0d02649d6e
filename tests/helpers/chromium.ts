/**
 * How Hone launches Chromium, for the e2e tests and the browser bench alike: Debian's build (browser downloads
 * are impossible here, and it is the browser the notes measured), quiet, with WebGPU on where wanted. On Linux
 * WebGPU needs --enable-unsafe-webgpu: without it navigator.gpu has no adapter.
 */
export const CHROMIUM = process.env.HONE_CHROMIUM ?? '/usr/bin/chromium';

const QUIET_FLAGS = [
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', ...QUIET_FLAGS];
export const NO_GPU_FLAGS = ['--disable-gpu', ...QUIET_FLAGS];
