#!/usr/bin/env node
// The `hone` command: runs the TypeScript CLI (and with it the same engine the browser worker runs) through tsx,
// so there is no separate build to keep in step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
