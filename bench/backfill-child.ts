/**
 * One backfill of the numeric features from a Parquet file, in a process of its own, so
 * that its peak RSS is its own: `node dist/bench/backfill-child.js <file> <dir>` prints
 * `{ ms, rows, maxRssMb }` as its last line.
 */
import { backfillOnce, NUMERIC_FEATURES } from './backfill.js';

const [file, dir] = process.argv.slice(2);
if (file === undefined || dir === undefined) throw new Error('usage: backfill-child <file> <dir>');
const run = await backfillOnce(dir, file, NUMERIC_FEATURES);
const maxRssMb = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ ms: run.ms, rows: run.rows, maxRssMb }));
