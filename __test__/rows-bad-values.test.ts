/**
 * One conversion path for rows (`ts/rows/`): a bad value gets the same problem text
 * whichever way it enters. `Tessera.ingest` throws it after the class and the row, for
 * row objects and for columns alike; a stream resolver keeps the message as a dead
 * letter whose reason is that text, through the general path (a schema the native
 * decoder does not take) and through the native decoder (which leaves what it is unsure
 * of to the general path).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidRowsError } from '../ts/api/errors.js';
import {
  boolean,
  datetime,
  features,
  float,
  hasMany,
  int,
  string,
  vector,
  windowed,
} from '../ts/dsl/index.js';
import { BoundResolver } from '../ts/resolvers/decode.js';
import { makeStreamResolver, StreamRunner } from '../ts/resolvers/index.js';
import { GROUP_KEY_FORMAT, MAX_STRING_KEY_BYTES } from '../ts/rows/keys.js';
import { MemorySource } from '../ts/sources/index.js';
import { Tessera } from '../ts/tessera.js';

const NOW = Date.UTC(2026, 0, 31, 12);
const HOUR = 3_600_000;

const Event = features('event', {
  id: string(),
  user_id: string().references('user.id'),
  bank: string(),
  acct: int(),
  n: int(),
  amount: float(),
  flag: boolean(),
  at: datetime(),
  embedding: vector(2),
  note: string(),
  ts: datetime().featureTime(),
});

const User = features(
  'user',
  {
    id: string(),
    bank: string(),
    acct: int(),
    events: hasMany(() => Event),
    bank_events: hasMany(
      () => Event,
      (e) => e.user_id.eq(User.id).and(e.bank.eq(User.bank)),
    ),
    acct_events: hasMany(
      () => Event,
      (e) => e.acct.eq(User.acct),
    ),
  },
  (user) => {
    const hourly = { bucketDuration: '1h' } as const;
    return {
      amount: windowed('1d', {
        materialization: hourly,
        expression: user.events.select((e) => e.amount).sum(),
        default: 0,
      }),
      n: windowed('1d', {
        materialization: hourly,
        expression: user.events.select((e) => e.n).sum(),
        default: 0,
      }),
      flags: windowed('1d', {
        materialization: hourly,
        expression: user.events.select((e) => e.flag).count(),
      }),
      latest: windowed('1d', {
        materialization: hourly,
        expression: user.events.select((e) => e.at).max(),
      }),
      centroid: windowed('1d', {
        materialization: hourly,
        expression: user.events.select((e) => e.embedding).mean(),
      }),
      bank_amount: windowed('1d', {
        materialization: hourly,
        expression: user.bank_events.select((e) => e.amount).sum(),
        default: 0,
      }),
      acct_amount: windowed('1d', {
        materialization: hourly,
        expression: user.acct_events.select((e) => e.amount).sum(),
        default: 0,
      }),
    };
  },
);

const dirs: string[] = [];
const stores: Tessera[] = [];
function open(): Tessera {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-rows-'));
  dirs.push(dir);
  const tessera = Tessera.open({ path: dir, features: [User, Event] });
  tessera.setClock(NOW);
  stores.push(tessera);
  return tessera;
}

afterEach(() => {
  for (const t of stores.splice(0)) t.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A good event, as a row and as the JSON fields of a message. */
const good = {
  id: 'e1',
  user_id: 'u1',
  bank: 'acme',
  acct: 7,
  n: 2,
  amount: 10.5,
  flag: true,
  at: '2026-01-31T10:00:00Z',
  embedding: [1, 2],
  note: 'ok',
  ts: '2026-01-31T11:00:00Z',
} as const;
type Column = keyof typeof good;

/** The numeric columns, given as typed arrays in the column form. */
const NUMERIC: readonly Column[] = ['acct', 'n', 'amount', 'flag'];

interface BadValue {
  readonly what: string;
  readonly column: Column;
  /** The value in a row object (and, unless `json` says otherwise, in the message). */
  readonly value: unknown;
  /** The value's JSON text in the message, when JSON.stringify cannot write it. */
  readonly json?: string;
  /** The column's typed-array form of the good and the bad value, if it has one. */
  readonly typed?: readonly [unknown, unknown];
  /** The plain message schema types the value: the native decoder sees the message. */
  readonly plain: boolean;
  /** Other columns of the bad row (a composite key's other part). */
  readonly with?: Partial<Record<Column, unknown>>;
  readonly problem: string;
}

const longKey = 'k'.repeat(MAX_STRING_KEY_BYTES + 1);
// With user_id 'u1' (5 + 2 bytes), a bank of 65,524 bytes makes the pair one byte too long.
const longBank = 'b'.repeat(
  GROUP_KEY_FORMAT.maxBytes - 2 * GROUP_KEY_FORMAT.stringPartHeaderBytes - 1,
);

const BAD_VALUES: readonly BadValue[] = [
  {
    what: 'a fraction in an int column',
    column: 'n',
    value: 1.5,
    plain: true,
    problem: 'n is 1.5, not a whole number within 2^53 (int)',
  },
  {
    what: 'an int past 2^53',
    column: 'n',
    value: 2 ** 53,
    plain: true,
    problem: 'n is 9007199254740992, not a whole number within 2^53 (int)',
  },
  {
    what: 'Infinity in an int column',
    column: 'n',
    value: Number.POSITIVE_INFINITY,
    json: '1e999',
    plain: true,
    problem: 'n is Infinity, not a finite number',
  },
  {
    what: '-Infinity in a float column',
    column: 'amount',
    value: Number.NEGATIVE_INFINITY,
    json: '-1e999',
    plain: true,
    problem: 'amount is -Infinity, not a finite number',
  },
  {
    what: 'a string in a float column',
    column: 'amount',
    value: 'ten',
    plain: false,
    problem: "amount is 'ten', not a number (float)",
  },
  {
    what: 'a number that is not a boolean',
    column: 'flag',
    value: 2,
    typed: [1, 2],
    plain: false,
    problem: 'flag is 2, not a boolean',
  },
  {
    what: 'a date not on the calendar as the feature time',
    column: 'ts',
    value: '2026-02-30T00:00:00Z',
    plain: true,
    problem: "ts '2026-02-30T00:00:00Z' is not a date on the calendar (February 2026 has 28 days)",
  },
  {
    what: 'a date not on the calendar in a datetime column',
    column: 'at',
    value: '2025-02-29T08:00:00+02:00',
    plain: true,
    problem:
      "at '2025-02-29T08:00:00+02:00' is not a date on the calendar (February 2025 has 28 days)",
  },
  {
    what: 'a naive time',
    column: 'at',
    value: '2026-01-31T10:00:00',
    plain: true,
    problem:
      "at '2026-01-31T10:00:00' is not an ISO-8601 date-time with a time zone: it is naive (add 'Z' or an offset such as '+02:00')",
  },
  {
    what: 'a time that is not one',
    column: 'ts',
    value: 'yesterday',
    plain: true,
    problem:
      "ts 'yesterday' is not an ISO-8601 date-time with a time zone (e.g. '2026-01-31T12:00:00Z' or '2026-01-31T14:00:00+02:00')",
  },
  {
    what: 'epoch ms past what a Date holds',
    column: 'at',
    value: 1e16,
    typed: [Date.UTC(2026, 0, 31), 1e16],
    plain: false,
    problem:
      'at is 10000000000000000, past the times a Date holds (within 8640000000000000 ms of 1970)',
  },
  {
    what: 'a string group key one byte past the key format',
    column: 'user_id',
    value: longKey,
    plain: true,
    problem: `user_id is a string of ${MAX_STRING_KEY_BYTES + 1} UTF-8 bytes; a group key string holds at most ${MAX_STRING_KEY_BYTES}`,
  },
  {
    what: 'a composite group key one byte past the key format',
    column: 'bank',
    value: longBank,
    plain: true,
    problem: `user_id+bank is a group key of ${GROUP_KEY_FORMAT.maxBytes + 1} bytes as the store encodes it; a group key holds at most ${GROUP_KEY_FORMAT.maxBytes} (9 per integer part, 5 plus the UTF-8 bytes per string part)`,
  },
  {
    what: 'a fraction as an integer group key',
    column: 'acct',
    value: 7.25,
    plain: true,
    problem: 'acct is 7.25, not a whole number within 2^53 (int)',
  },
  {
    what: 'a lone surrogate in a group key',
    column: 'user_id',
    value: 'u\udc00',
    json: '"u\\udc00"',
    plain: true,
    problem:
      "user_id is 'u\\udc00', a string with a lone UTF-16 surrogate, which UTF-8 cannot hold exactly",
  },
  {
    what: 'a number in a string column no aggregation reads',
    column: 'note',
    value: 3,
    plain: false,
    problem: 'note is 3, not a string',
  },
  {
    what: 'a vector of the wrong dimension',
    column: 'embedding',
    value: [1],
    plain: false,
    problem: 'embedding has 1 components; event.embedding has 2',
  },
  {
    what: 'a non-finite vector component',
    column: 'embedding',
    value: [1, Number.POSITIVE_INFINITY],
    json: '[1,1e999]',
    typed: [
      [1, 2],
      [1, Number.POSITIVE_INFINITY],
    ],
    plain: false,
    problem: 'embedding component 1 is Infinity, not a finite number',
  },
];

/** The message of a row: its JSON, with `json` in place of the bad column's value. */
function message(row: Record<string, unknown>, bad?: BadValue): Buffer {
  if (bad?.json === undefined) return Buffer.from(JSON.stringify(row));
  const placeholder = '"__bad__"';
  const text = JSON.stringify({ ...row, [bad.column]: '__bad__' }).replace(placeholder, bad.json);
  return Buffer.from(text);
}

const loose = z.object(Object.fromEntries(Object.keys(good).map((k) => [k, z.unknown()])));
/** Plain fields only (no vector), which the native decoder takes. */
const plain = z.object({
  id: z.string(),
  user_id: z.string(),
  bank: z.string(),
  acct: z.number(),
  n: z.number(),
  amount: z.number(),
  flag: z.boolean(),
  at: z.string(),
  note: z.string(),
  ts: z.string(),
});
const columns = Object.fromEntries(Object.keys(good).map((k) => [k, k]));
const plainColumns = Object.fromEntries(Object.keys(plain.shape).map((k) => [k, k]));

/** Streams a good message and then `row` through a resolver; the dead letters' reasons. */
async function deadLetterReasons(
  tessera: Tessera,
  name: string,
  form: 'general' | 'native' | 'function',
  row: Record<string, unknown>,
  bad: BadValue,
): Promise<string[]> {
  const source = new MemorySource();
  const common = { name, source, output: Event };
  const resolver =
    form === 'function'
      ? makeStreamResolver({ ...common, messageType: loose, resolve: (m) => m })
      : makeStreamResolver({
          ...common,
          messageType: form === 'native' ? plain : loose,
          outputFeatures: form === 'native' ? plainColumns : columns,
        });
  if (form === 'native') {
    expect(new BoundResolver(resolver, tessera.plan).hasFastPath).toBe(true);
  }
  source.push(message({ ...good, id: 'g' }));
  source.push(message(row, bad));
  source.end();
  const metrics = await new StreamRunner(tessera, resolver, { lagIntervalMs: 0 }).run();
  expect(metrics.accepted, `${name}: the good message is folded`).toBe(1);
  return tessera.engine.deadLetters({ source: name }).map((l) => l.reason);
}

function ingestError(run: () => unknown): InvalidRowsError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidRowsError);
    return e as InvalidRowsError;
  }
  throw new Error('ingest accepted the batch');
}

describe('a bad value gets the same problem text on every way in', () => {
  it('covers at least ten kinds of bad value', () => {
    expect(new Set(BAD_VALUES.map((b) => b.what)).size).toBeGreaterThanOrEqual(10);
  });

  for (const bad of BAD_VALUES) {
    it(`${bad.what}: ingest rows, ingest columns and streams agree`, async () => {
      const tessera = open();
      const row: Record<string, unknown> = {
        ...good,
        id: 'bad',
        ...bad.with,
        [bad.column]: bad.value,
      };

      const fromRows = ingestError(() => tessera.ingest(Event, [good, row]));
      expect(fromRows.message).toBe(`event row 1: ${bad.problem}`);
      expect(fromRows.problem).toBe(bad.problem);
      expect(fromRows.row).toBe(1);

      // Columns: typed arrays for the numeric columns (and for the bad column where it
      // has a typed form), arrays for the others.
      const columnar: Record<string, unknown> = {};
      for (const k of Object.keys(good) as Column[]) {
        const values = [good[k], row[k]];
        if (k === bad.column && bad.typed !== undefined) {
          columnar[k] = Float64Array.from(bad.typed.flat() as number[]);
        } else if (NUMERIC.includes(k) && values.every((v) => typeof v !== 'string')) {
          columnar[k] = Float64Array.from(values, Number);
        } else {
          columnar[k] = values;
        }
      }
      const fromColumns = ingestError(() => tessera.ingest(Event, columnar as never));
      expect(fromColumns.message).toBe(`event row 1: ${bad.problem}`);

      const forms = ['general', 'function', ...(bad.plain ? ['native' as const] : [])] as const;
      for (const form of forms) {
        const reasons = await deadLetterReasons(tessera, `events_${form}`, form, row, bad);
        expect(reasons, form).toEqual([bad.problem]);
      }
      // Nothing of the refused rows was written: only the good messages' amounts.
      const { rows } = tessera.query({
        input: { 'user.id': ['u1'] },
        output: [User.amount['1d']] as const,
        now: NOW + HOUR,
      });
      expect(rows[0]?.values).toEqual([good.amount * forms.length]);
    });
  }
});
