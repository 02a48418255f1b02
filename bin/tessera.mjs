#!/usr/bin/env node
// The `tessera` command: runs the compiled CLI (built by `npm install` / `npm run build:ts`).
import { main } from '../dist/ts/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
