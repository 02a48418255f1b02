/**
 * Where stream resolvers read messages: Kafka, an in-process log (the embedded default),
 * or the replay of a JSON-lines file. All share the {@link Source} contract.
 */
export { JsonLinesSource, type JsonLinesSourceOptions } from './json-lines.js';
export { KafkaSource, type KafkaSourceOptions } from './kafka.js';
export { hashBytes, MemorySource, type MemorySourceOptions, type PushOptions } from './memory.js';
export {
  type PartitionLag,
  type PartitionPosition,
  positionMap,
  type Source,
  type SourceMessage,
} from './source.js';
