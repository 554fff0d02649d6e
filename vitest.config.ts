import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'tests/unit/**/*.test.ts',
      'workers/**/*.test.ts',
      'core/**/*.test.ts',
      'cli/**/*.test.ts',
      'scripts/**/*.test.ts',
      'src/**/*.test.ts',
    ],
    // Software WebGPU is slow; kernels are tested on tiny shapes, but compiling shaders still takes time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
