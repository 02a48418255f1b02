/**
 * The command table. To add a command (`demo`, `aggregate backfill`, `deadletters`),
 * write `commands/<name>.ts` exporting a `Command` and list it here.
 */
import type { Command } from './command.js';
import { aggregateBackfill } from './commands/aggregate-backfill.js';
import { aggregateList } from './commands/aggregate-list.js';
import { aggregateSchedules } from './commands/aggregate-schedules.js';
import { deadletters } from './commands/deadletters.js';
import { demo } from './commands/demo.js';
import { parityCommand } from './commands/parity.js';
import { serve } from './commands/serve.js';

/** Every command of the `tessera` CLI. */
export const commands: readonly Command[] = [
  aggregateList,
  aggregateBackfill,
  aggregateSchedules,
  demo,
  deadletters,
  parityCommand,
  serve,
];
