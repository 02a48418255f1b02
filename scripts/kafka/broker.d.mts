/** A running broker started by {@link startBroker}. */
export interface Broker {
  /** `127.0.0.1:<port>`: the bootstrap address for clients. */
  bootstrap: string;
  brokerPort: number;
  controllerPort: number;
  /** The JVM's process id. */
  pid: number;
  /** Its temporary directory (configuration, data, log), removed when it stops. */
  dir: string;
  /** The broker's output. */
  logFile: string;
  version: string;
}

export interface StartOptions {
  /** JVM heap in MiB (default 512). */
  heapMb?: number;
  /** How long startup may take (default 60 s). */
  timeoutMs?: number;
  /** Kafka version (default {@link KAFKA_VERSION}). */
  version?: string;
}

export const KAFKA_VERSION: string;
export function jarCache(version?: string): string;
export function resolveJars(version?: string): Promise<string>;
export function freePort(): Promise<number>;
export function startBroker(options?: StartOptions): Promise<Broker>;
export function stopBroker(broker?: Broker, graceMs?: number): Promise<void>;
export function staleBrokerDirs(): string[];
