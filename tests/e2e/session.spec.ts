import { expect, type Page, test } from '@playwright/test';

/** The run's step, from its progress line. */
async function stepReached(page: Page): Promise<number> {
  return Number((await page.getByTestId('run-progress').textContent())?.match(/Step (\d+) of/)?.[1] ?? 0);
}

async function setNumber(page: Page, label: string, value: string) {
  const field = page.getByTestId('train-settings').getByLabel(label, { exact: true });
  await field.fill(value);
  await field.blur();
}

test('a first session: guided from step to step, and a reload mid-run resumes with nothing dropped again', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByTestId('first-visit')).toContainText('offline demo model');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(page.getByTestId('step-state-model')).toHaveText('✓ hone-tiny');
  await page.getByTestId('next-step').getByRole('button').click();
  await page.getByRole('button', { name: /^Instructions/ }).click();
  await expect(page.getByTestId('dataset-counts')).toContainText('400 usable');
  await expect(page.getByTestId('step-state-data')).toContainText('✓ instructions.jsonl');
  await page.getByTestId('next-step').getByRole('button').click();
  await expect(page.getByTestId('train-inputs')).toContainText('Trains hone-tiny on instructions.jsonl (messages');
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Sequence length', '64');
  await setNumber(page, 'Max steps (empty: by epochs)', '200');
  await setNumber(page, 'Checkpoint every (steps)', '2');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect.poll(() => stepReached(page)).toBeGreaterThanOrEqual(3);
  await expect(page.getByTestId('step-state-train')).toHaveText('training');
  await page.screenshot({ path: 'test-results/session-before-reload.png', fullPage: true });

  // A reload in the middle of the run, not paused: the model, the data, the settings and the step come back, and the
  // run is announced with Resume one click away.
  await page.reload();
  const saved = page.getByTestId('saved-run');
  await expect(saved).toContainText(/An interrupted SFT run on hone-tiny \(instructions.jsonl\) stopped at step \d+/);
  const checkpointed = Number((await saved.textContent())?.match(/stopped at step (\d+)/)?.[1]);
  expect(checkpointed).toBeGreaterThanOrEqual(2);
  await expect(page.getByRole('button', { name: /Train/ })).toHaveAttribute('aria-current', 'step');
  await expect(page.getByTestId('step-state-model')).toHaveText('✓ hone-tiny');
  await expect(page.getByTestId('step-state-data')).toContainText('✓ instructions.jsonl');
  await expect(page.getByTestId('train-settings').getByLabel('Sequence length', { exact: true })).toHaveValue('64');
  await saved.getByRole('button', { name: 'Resume the run' }).click();
  await expect.poll(() => stepReached(page)).toBeGreaterThanOrEqual(checkpointed + 2);
  // The time left is measured on the steps trained since resuming, not the replayed ones.
  await expect(page.getByTestId('run-progress')).toContainText(/about \d+(\.\d)? (s|min)/);
  await page.getByRole('button', { name: 'Stop' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Stopped');
  await page.screenshot({ path: 'test-results/session-resumed.png', fullPage: true });
  await expect(page.getByTestId('next-step')).toContainText('chat with the base and the tuned model');

  // The dataset can be forgotten; a reload then keeps the model but not the data.
  await page.getByRole('button', { name: /Data/ }).click();
  await page.getByRole('button', { name: 'Forget it' }).click();
  await page.reload();
  await expect(page.getByTestId('step-state-model')).toHaveText('✓ hone-tiny');
  await expect(page.getByTestId('step-state-data')).toHaveCount(0);
  await expect(page.getByTestId('saved-run')).toHaveCount(0);
});

test('the studio fits a 390 px wide phone screen on every step', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await page.getByTestId('next-step').getByRole('button').click();
  await page.getByRole('button', { name: /^Instructions/ }).click();
  await expect(page.getByTestId('dataset-counts')).toContainText('400 usable');
  for (const step of [/Model/, /Data/, /Train/, /Compare/, /Export/]) {
    await page.getByRole('button', { name: step }).click();
    const { scroll, inner } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }));
    expect(scroll, `${step}`).toBeLessThanOrEqual(inner);
  }
  await page.getByRole('button', { name: /Train/ }).click();
  await page.screenshot({ path: 'test-results/phone-train-step.png', fullPage: true });
});

test('a reward model trained in this tab is the reward of the policy optimized next, with no files picked', async ({
  page,
}) => {
  await page.goto('/');
  await page.getByLabel('Offline demo model (hone-tiny)').check();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await page.getByTestId('next-step').getByRole('button').click();
  await page.getByRole('button', { name: /^Preferences/ }).click();
  await expect(page.getByTestId('step-state-data')).toContainText('✓ preferences.jsonl');
  await page.getByTestId('next-step').getByRole('button').click();
  await page.getByTestId('train-settings').getByLabel('Method').selectOption('rm');
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Sequence length', '64');
  await setNumber(page, 'Max steps (empty: by epochs)', '2');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');

  await page.getByRole('button', { name: /Data/ }).click();
  await page.getByRole('button', { name: /^RL prompts/ }).click();
  await expect(page.getByTestId('step-state-data')).toContainText('✓ rl-prompts.jsonl');
  await page.getByTestId('next-step').getByRole('button').click();
  await expect(page.getByTestId('train-settings').getByLabel('Method')).toHaveValue('grpo');
  await expect(page.getByTestId('run-data')).toContainText('RM run');
  await expect(page.getByTestId('run-previous')).toHaveText(
    'The last run’s figures: Start training below begins a new GRPO run.',
  );
  await setNumber(page, 'LoRA rank', '4');
  await setNumber(page, 'Batch size', '1');
  await setNumber(page, 'Completions per prompt', '2');
  await setNumber(page, 'Longest completion (tokens)', '2');
  await setNumber(page, 'Max steps (empty: by epochs)', '1');
  await page.getByLabel('A reward model trained here').check();
  await expect(page.getByTestId('reward-picker').getByLabel('Checkpoint step')).toHaveValue('2');
  await page.getByRole('button', { name: 'Start training' }).click();
  await expect(page.getByTestId('run-status')).toHaveText('Finished');
  await expect(page.getByTestId('run-progress')).toContainText(/Step 1 of 1, loss -?[\d.]+, reward -?[\d.]+/);
  await expect(page.getByTestId('run-previous')).toHaveCount(0);
});
