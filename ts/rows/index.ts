/**
 * The conversion path every way rows enter shares: `Tessera.ingest` (row objects and
 * columns), stream resolvers (the general path, and the native decoder, which leaves
 * whatever it is unsure of to the general path), and batch resolvers, which hand their
 * rows or columns to `ClassIngest.prepare` (`ts/api/ingest.ts`) as `ingest` does.
 *
 * A bad value gets one problem text wherever it enters, worded after the column's name
 * (`amount is 1.5, not a whole number within 2^53 (int)`): `ingest` throws it as
 * `<class> row <row>: <problem>` (`InvalidRowsError`, whose `problem` is the text),
 * and a stream keeps the message as a dead letter with the text as its reason.
 */
export { describeValue } from './describe.js';
export {
  GROUP_KEY_FORMAT,
  groupKeyColumnsProblem,
  groupKeyName,
  groupKeyProblem,
  keyPartBytes,
  MAX_STRING_KEY_BYTES,
  numberKeyProblem,
} from './keys.js';
export {
  columnKey,
  missingColumnProblem,
  parseColumnName,
  seriesLabel,
  seriesTrigger,
  writtenColumns,
} from './names.js';
export { MAX_TIME_MS, timeProblem, zonedIsoProblem } from './time.js';
export {
  isNullValue,
  type NumericKind,
  numberProblem,
  numberValueProblem,
  stringProblem,
  typedColumnProblem,
  typedVectorProblem,
  vectorProblem,
  wellFormedProblem,
} from './values.js';
