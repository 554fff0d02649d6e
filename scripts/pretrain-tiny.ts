/** `npm run pretrain:tiny`: see scripts/tiny-model/pretrain.ts. */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEFAULTS, type PretrainOptions, pretrain, reportMarkdown } from './tiny-model/pretrain';

async function main() {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'public/models/hone-tiny' },
      report: { type: 'string', default: 'docs/tiny-model.md' },
      minutes: { type: 'string' },
      steps: { type: 'string' },
      seed: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
    },
  });
  const o: PretrainOptions = {
    ...DEFAULTS,
    out: values.out,
    report: values.report,
    ...(values.minutes && { minutes: Number(values.minutes) }),
    ...(values.steps && { steps: Number(values.steps) }),
    ...(values.seed && { seed: Number(values.seed) }),
    ...(values.batch && { batch: Number(values.batch) }),
    ...(values.seq && { seq: Number(values.seq) }),
  };
  const result = await pretrain(o);
  if (o.report) await writeFile(o.report, reportMarkdown(result, o));
  process.stdout.write(`saved ${o.out}${o.report ? ` and ${o.report}` : ''}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
