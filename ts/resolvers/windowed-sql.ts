/**
 * The DuckDB database of SQL windowed resolvers (docs/semantics.md section 6.1): one per
 * runner (and one per Tessera for continuous windows computed at query time), made on
 * first use and closed with its owner. A window's messages become a temporary table of
 * their fields (DOUBLE, BOOLEAN or VARCHAR, by the first value of each), the SQL runs
 * over it, and the rows come back as objects (64-bit integers as numbers).
 */
import { importOptionalPeer } from '../optional-peer.js';

export class WindowSql {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(
    private readonly instance: { closeSync(): void },
    private readonly connection: {
      run(sql: string): Promise<unknown>;
      runAndReadAll(sql: string): Promise<{ getRowObjectsJS(): Record<string, unknown>[] }>;
      createAppender(table: string): Promise<{
        appendNull(): void;
        appendDouble(v: number): void;
        appendBoolean(v: boolean): void;
        appendVarchar(v: string): void;
        endRow(): void;
        closeSync(): void;
      }>;
      closeSync(): void;
    },
  ) {}

  /** Opens an in-memory database (one thread: windows are small, runners many). */
  static async open(feature: string): Promise<WindowSql> {
    const api = await importOptionalPeer(
      '@duckdb/node-api',
      feature,
      () => import('@duckdb/node-api'),
    );
    const instance = await api.DuckDBInstance.create(':memory:', { threads: '1' });
    const connection = await instance.connect();
    return new WindowSql(instance, connection);
  }

  /** Runs `sql` over `rows` as the table `table`; one statement at a time. */
  run(
    sql: string,
    table: string,
    rows: readonly Record<string, unknown>[],
  ): Promise<Record<string, unknown>[]> {
    const task = this.queue.then(async () => {
      const connection = this.connection;
      const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      const types = columns.map((c) => {
        const v = rows.find((r) => r[c] !== undefined && r[c] !== null)?.[c];
        return typeof v === 'number' ? 'DOUBLE' : typeof v === 'boolean' ? 'BOOLEAN' : 'VARCHAR';
      });
      const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
      await connection.run(
        `CREATE OR REPLACE TEMP TABLE ${quoted(table)} (${columns.map((c, i) => `${quoted(c)} ${types[i]}`).join(', ') || 'dummy INTEGER'})`,
      );
      if (columns.length > 0 && rows.length > 0) {
        const appender = await connection.createAppender(table);
        for (const row of rows) {
          columns.forEach((c, i) => {
            const v = row[c];
            if (v === undefined || v === null) appender.appendNull();
            else if (types[i] === 'DOUBLE') appender.appendDouble(Number(v));
            else if (types[i] === 'BOOLEAN') appender.appendBoolean(Boolean(v));
            else appender.appendVarchar(typeof v === 'string' ? v : JSON.stringify(v));
          });
          appender.endRow();
        }
        appender.closeSync();
      }
      const reader = await connection.runAndReadAll(sql);
      return reader
        .getRowObjectsJS()
        .map((r) =>
          Object.fromEntries(
            Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]),
          ),
        );
    });
    this.queue = task.catch(() => undefined);
    return task;
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** A database made on first use: `get()` opens it, `close()` closes it if it was. */
export function lazySql(feature: string): { get: () => Promise<WindowSql>; close: () => void } {
  let opened: Promise<WindowSql> | undefined;
  return {
    get: () => {
      opened ??= WindowSql.open(feature);
      return opened;
    },
    close: () => {
      void opened?.then((sql) => sql.close()).catch(() => undefined);
      opened = undefined;
    },
  };
}
