/** Option values shared by commands. */
import { toTimeMs } from '../api/values.js';
import { UsageError } from './command.js';

/** A time option (`--clock`, `--at`): an ISO-8601 time with a zone, or epoch ms; else a usage error. */
export function cliTime(value: string, option: string): number {
  try {
    return toTimeMs(/^-?\d+$/.test(value) ? Number(value) : value, option);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}
