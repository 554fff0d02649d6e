import { expect, type Page, test, type Worker } from '@playwright/test';

/**
 * A GPU device lost in the middle of a run, in the page: the engine worker's device is destroyed (the test keeps a
 * hold on it by wrapping `createCommandEncoder` inside the worker), the run panel says what was kept and how to go on, and
 * after the model is loaded again on a new device, Resume finishes the run from its checkpoint.
 */
async function engineWorker(page: Page): Promise<Worker> {
  const found = () => page.workers().find((w) => w.url().includes('engine.worker'));
  await expect.poll(() => found() !== undefined).toBe(true);
  return found() as Worker;
}

async function stepReached(page: Page): Promise<number> {
  return Number((await page.getByTestId('run-progress').textContent())?.match(/Step (\d+) of/)?.[1] ?? 0);
}

test('a lost GPU device mid-run keeps the run at its checkpoint; loading the model again resumes it', async ({
  page,
}) => {
  await page.goto('/');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  const worker = await engineWorker(page);
  // The device the engine last recorded work on (the worker may have asked for its device already).
  await worker.evaluate(() => {
    const scope = self as unknown as { honeDevice: GPUDevice | null; honeLost: GPUDevice | null };
    const encoder = GPUDevice.prototype.createCommandEncoder;
    GPUDevice.prototype.createCommandEncoder = function (this: GPUDevice, descriptor?: GPUCommandEncoderDescriptor) {
      scope.honeDevice = this;
      return encoder.call(this, descriptor);
    };
  });
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
  await page.getByTestId('next-step').getByRole('button').click();
  await page.getByRole('button', { name: /^Instructions/ }).click();
  await page.getByTestId('next-step').getByRole('button').click();
  const settings = page.getByTestId('train-settings');
  for (const [label, value] of [
    ['LoRA rank', '4'],
    ['Sequence length', '64'],
    ['Max steps (empty: by epochs)', '40'],
    ['Checkpoint every (steps)', '2'],
  ]) {
    await settings.getByLabel(label, { exact: true }).fill(value);
    await settings.getByLabel(label, { exact: true }).blur();
  }
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect.poll(() => stepReached(page)).toBeGreaterThanOrEqual(3);
  await worker.evaluate(() => {
    const scope = self as unknown as { honeDevice: GPUDevice; honeLost: GPUDevice };
    scope.honeLost = scope.honeDevice;
    scope.honeLost.destroy();
  });

  await expect(page.getByTestId('run-status')).toHaveText('Failed');
  const failure = page.getByRole('alert').filter({ hasText: 'The GPU device was lost' });
  await expect(failure).toContainText(/the run is kept at its last checkpoint, step \d+; load the model again/);
  const kept = Number((await failure.textContent())?.match(/last checkpoint, step (\d+)/)?.[1]);
  expect(kept).toBeGreaterThanOrEqual(2);
  const saved = page.getByTestId('saved-run');
  await expect(saved).toContainText(`stopped at step ${kept}`);
  await expect(page.getByTestId('step-state-model')).toHaveCount(0);
  await expect(saved.getByRole('button', { name: 'Resume the run' })).toBeDisabled();
  await page.screenshot({ path: 'test-results/device-lost.png', fullPage: true });

  await page.getByRole('button', { name: /Model/ }).click();
  await expect(page.getByTestId('device-lost')).toContainText('The GPU device was lost');
  await expect(page.getByTestId('model-loaded')).toHaveCount(0);
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('model-loaded')).toContainText('hone-tiny is on the GPU');
  await saved.getByRole('button', { name: 'Resume the run' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText('Step 40 of 40');
  await expect(page.getByTestId('device-lost')).toHaveCount(0);
  // The run finished on a new device.
  const newDevice = await worker.evaluate(() => {
    const scope = self as unknown as { honeDevice: GPUDevice; honeLost: GPUDevice };
    return scope.honeDevice !== scope.honeLost;
  });
  expect(newDevice).toBe(true);
});
