/** Option values shared by commands. */
import { toTimeMs } from '../api/values.js';
import { type OptionSpec, UsageError } from './command.js';

/** A time option (`--clock`, `--at`): an ISO-8601 time with a zone, or epoch ms; else a usage error. */
export function cliTime(value: string, option: string): number {
  try {
    return toTimeMs(/^-?\d+$/.test(value) ? Number(value) : value, option);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** `--path <dir>`: the store a command opens (required). */
export const storePathOption: OptionSpec = {
  type: 'string',
  valueName: '<dir>',
  description: 'the store directory',
  required: true,
};

/** `--clock <time>`: pins the engine clock; `pins` says what else it pins, for the help. */
export function clockOption(pins: string): OptionSpec {
  return { type: 'string', valueName: '<time>', description: `pin ${pins} to this ISO time` };
}
