/**
 * Backfill schedules (docs/semantics.md section 10), in one place for the planner (which
 * validates `backfillSchedule`) and the scheduler (which steps them): a cron expression,
 * read and stepped by cron-parser in UTC, or a positive duration, whose times are the
 * multiples of it since the Unix epoch.
 */
import { CronExpressionParser } from 'cron-parser';
import { InvalidOptionError } from '../api/errors.js';
import { tryParseDuration } from '../dsl/duration.js';
import type { BackfillSchedule } from './types.js';

/** A schedule, or why `text` is none: neither a cron expression nor a positive duration. */
export function scheduleOf(text: unknown): BackfillSchedule | { readonly problem: string } {
  if (typeof text !== 'string') return { problem: 'a schedule is a cron expression or a duration' };
  const problem = cronProblem(text);
  if (problem === null) return { kind: 'cron', expression: text.trim() };
  const parsed = tryParseDuration(text);
  if (parsed.ok && parsed.ms > 0) return { kind: 'interval', everyMs: parsed.ms };
  return {
    problem: `${JSON.stringify(text)} is neither a cron expression ('0 0 * * *'; ${problem}) nor a duration ('6h')`,
  };
}

/** A cron expression or a positive duration, or an error naming `owner`. */
export function parseSchedule(text: unknown, owner: string): BackfillSchedule {
  const schedule = scheduleOf(text);
  if ('problem' in schedule) throw new InvalidOptionError(`${owner}: schedule ${schedule.problem}`);
  return schedule;
}

/** Why `text` is not a cron expression cron-parser reads, or null when it is one. */
export function cronProblem(text: string): string | null {
  try {
    CronExpressionParser.parse(text.trim(), { tz: 'UTC', strict: false });
    return /^\s*\S+(\s+\S+){4,5}\s*$/.test(text) || /^\s*@\w+\s*$/.test(text)
      ? null
      : 'a cron expression has 5 or 6 fields';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** The first time of `schedule` strictly after `afterMs`. */
export function nextTime(schedule: BackfillSchedule, afterMs: number): number {
  if (schedule.kind === 'interval') {
    return (Math.floor(afterMs / schedule.everyMs) + 1) * schedule.everyMs;
  }
  const cron = CronExpressionParser.parse(schedule.expression, {
    tz: 'UTC',
    currentDate: new Date(afterMs),
  });
  return cron.next().getTime();
}

/** The latest time of `schedule` at or before `atMs`. */
export function previousTime(schedule: BackfillSchedule, atMs: number): number {
  if (schedule.kind === 'interval') return Math.floor(atMs / schedule.everyMs) * schedule.everyMs;
  const cron = CronExpressionParser.parse(schedule.expression, {
    tz: 'UTC',
    currentDate: new Date(atMs + 1),
  });
  return cron.prev().getTime();
}
