// A real Apache Kafka broker for tests and benchmarks: one KRaft node (combined broker
// and controller) on 127.0.0.1, run from Kafka's own jars resolved from Maven Central.
//
//   import { startBroker, stopBroker } from './scripts/kafka/broker.mjs';
//   const broker = await startBroker();      // { bootstrap: '127.0.0.1:<port>', ... }
//   ...
//   await stopBroker(broker);
//
// The jars are resolved once with Maven (`mvn dependency:copy-dependencies`, pom.xml next
// to this file) into a cache outside the clone, ~/.cache/tessera/kafka-<version>/ (or
// $TESSERA_KAFKA_CACHE). Each broker gets free loopback ports and a fresh log directory
// in the system temp directory, removed when it stops. A watchdog process stops the
// broker if the process that started it dies without stopping it (a killed test run must
// not leave a JVM behind). `node scripts/kafka/broker.mjs` starts one in the foreground
// until Ctrl-C, for trying things by hand.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Kafka release the tests run (4.1 is the newest @platformatic/kafka 1.x supports). */
export const KAFKA_VERSION = '4.1.1';

const here = dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';

/** Where the jars of `version` are cached. */
export function jarCache(version = KAFKA_VERSION) {
  const root = process.env.TESSERA_KAFKA_CACHE ?? join(homedir(), '.cache', 'tessera');
  return join(root, `kafka-${version}`);
}

function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 16 << 20, ...options }, (error, stdout, stderr) => {
      if (error) {
        const output = `${stdout}${stderr}`.trim().split('\n').slice(-30).join('\n');
        reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${output}`));
      } else resolve(stdout);
    });
  });
}

/**
 * Resolves Kafka's runtime jars into the cache (once) and returns the directory holding
 * them. Maven downloads into a private directory first and renames it into place, so a
 * concurrent or interrupted resolution never leaves a half-filled cache behind.
 */
export async function resolveJars(version = KAFKA_VERSION) {
  const cache = jarCache(version);
  const jars = join(cache, 'jars');
  if (existsSync(join(jars, `kafka_2.13-${version}.jar`))) return jars;
  mkdirSync(cache, { recursive: true });
  const staging = mkdtempSync(join(cache, 'staging-'));
  try {
    await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        join(here, 'pom.xml'),
        `-Dkafka.version=${version}`,
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${staging}`,
      ],
      { cwd: here, timeout: 600_000 },
    );
    if (!existsSync(join(staging, `kafka_2.13-${version}.jar`))) {
      throw new Error(`mvn did not produce kafka_2.13-${version}.jar in ${staging}`);
    }
    try {
      renameSync(staging, jars);
    } catch (error) {
      // Another process won the race: its directory is complete, ours is redundant.
      if (!existsSync(join(jars, `kafka_2.13-${version}.jar`))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return jars;
}

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

function serverProperties({ brokerPort, controllerPort, logDir }) {
  return `${[
    'process.roles=broker,controller',
    'node.id=1',
    `listeners=PLAINTEXT://${HOST}:${brokerPort},CONTROLLER://${HOST}:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${brokerPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `controller.quorum.bootstrap.servers=${HOST}:${controllerPort}`,
    `log.dirs=${logDir}`,
    // One node: every internal topic has one replica, and few partitions so that the
    // first consumer group does not wait for 50 offsets partitions to be created.
    'num.partitions=1',
    'default.replication.factor=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // Tests create their topics with the admin client; a typo must not create one.
    'auto.create.topics.enable=false',
    'log.retention.hours=24',
    'log.segment.bytes=67108864',
  ].join('\n')}\n`;
}

function javaArgs(jars, heapMb) {
  return [
    `-Xmx${heapMb}m`,
    '-Xms64m',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-Xshare:auto',
    '-Djava.awt.headless=true',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    '-cp',
    `${jars}/*`,
  ];
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Whether process `pid` is alive. */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a broker and resolves once it accepts clients. Options: `heapMb` (default 512),
 * `timeoutMs` for startup (default 60 s), `version`.
 *
 * @returns {Promise<{ bootstrap: string, brokerPort: number, controllerPort: number,
 *   pid: number, dir: string, logFile: string, version: string }>}
 */
export async function startBroker(options = {}) {
  const version = options.version ?? KAFKA_VERSION;
  const heapMb = options.heapMb ?? 512;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const jars = await resolveJars(version);
  const brokerPort = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === brokerPort) controllerPort = await freePort();

  const dir = mkdtempSync(join(tmpdir(), 'tessera-kafka-'));
  const logDir = join(dir, 'data');
  const properties = join(dir, 'server.properties');
  const logFile = join(dir, 'broker.log');
  writeFileSync(properties, serverProperties({ brokerPort, controllerPort, logDir }));
  // A base64url id may start with '-', which the storage tool's argument parser takes
  // for an option (one start in 64 failed so): draw again until it does not.
  let clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  try {
    await run('java', [
      ...javaArgs(jars, 256),
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      properties,
      '--standalone',
    ]);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const out = openSync(logFile, 'a');
  const child = spawn('java', [...javaArgs(jars, heapMb), 'kafka.Kafka', properties], {
    stdio: ['ignore', out, out],
    detached: false,
  });
  closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.once('error', () => {});
  const broker = {
    bootstrap: `${HOST}:${brokerPort}`,
    brokerPort,
    controllerPort,
    pid: child.pid,
    dir,
    logFile,
    version,
  };
  brokers.set(child.pid, { broker, child, exited });
  startWatchdog(child.pid, dir);

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = tail(logFile);
      await stopBroker(broker);
      throw new Error(`the Kafka broker exited during startup:\n${log}`);
    }
    if (tail(logFile, 200).includes('Kafka Server started') && (await canConnect(brokerPort))) {
      return broker;
    }
    if (Date.now() > deadline) {
      const log = tail(logFile);
      await stopBroker(broker);
      throw new Error(`the Kafka broker did not start within ${timeoutMs} ms:\n${log}`);
    }
    await sleep(100);
  }
}

/** Brokers started by this process, by pid. */
const brokers = new Map();

/**
 * Stops a broker started by {@link startBroker} (or every one this process started, with
 * no argument): SIGTERM, then SIGKILL after `graceMs` (default 10 s); removes its files.
 */
export async function stopBroker(broker, graceMs = 10_000) {
  const targets = broker ? [broker.pid] : [...brokers.keys()];
  await Promise.all(
    targets.map(async (pid) => {
      const entry = brokers.get(pid);
      brokers.delete(pid);
      if (entry && entry.child.exitCode === null && entry.child.signalCode === null) {
        entry.child.kill('SIGTERM');
        const timer = setTimeout(() => entry.child.kill('SIGKILL'), graceMs);
        await entry.exited;
        clearTimeout(timer);
      } else if (!entry && alive(pid)) {
        process.kill(pid, 'SIGTERM');
        const deadline = Date.now() + graceMs;
        while (alive(pid) && Date.now() < deadline) await sleep(100);
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
      const dir = entry?.broker.dir ?? broker?.dir;
      if (dir) rmSync(dir, { recursive: true, force: true });
    }),
  );
}

/**
 * A detached process that stops the broker `brokerPid` (and removes `dir`) when the
 * process that started it is gone, and exits when the broker does.
 */
function startWatchdog(brokerPid, dir) {
  const watchdog = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), '--watchdog', String(process.pid), String(brokerPid), dir],
    { stdio: 'ignore', detached: true },
  );
  watchdog.unref();
}

async function watchdog(parentPid, brokerPid, dir) {
  while (alive(brokerPid)) {
    if (!alive(parentPid)) {
      try {
        process.kill(brokerPid, 'SIGTERM');
      } catch {}
      const deadline = Date.now() + 10_000;
      while (alive(brokerPid) && Date.now() < deadline) await sleep(200);
      if (alive(brokerPid)) {
        try {
          process.kill(brokerPid, 'SIGKILL');
        } catch {}
      }
      break;
    }
    await sleep(1000);
  }
  // The broker is gone; its directory too, unless someone removed it already.
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}

/** Lists stale broker directories (from runs that were killed) — for diagnostics. */
export function staleBrokerDirs() {
  return readdirSync(tmpdir()).filter((name) => name.startsWith('tessera-kafka-'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [flag, ...rest] = process.argv.slice(2);
  if (flag === '--watchdog') {
    const [parentPid, brokerPid, dir] = rest;
    await watchdog(Number(parentPid), Number(brokerPid), dir);
  } else {
    const started = Date.now();
    const broker = await startBroker();
    console.log(`Kafka ${broker.version} on ${broker.bootstrap} (${Date.now() - started} ms)`);
    console.log('Ctrl-C stops it.');
    const stop = async () => {
      await stopBroker(broker);
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }
}
