// The `prepare` hook: runs in a clone of the repository (on `npm install` there), never
// when the published package is installed. It builds the native engine from source
// unless an earlier local build in native/ loads, then compiles the TypeScript façade so
// the CLI and the demo run. A consumer install gets the prebuilt binary from the
// per-platform optional dependency instead, and compiles nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

/** True when a local build for this machine is in native/ and loads (in a child process,
 * so a binary for another platform or Node ABI leaves nothing behind in this one). */
function localBuildLoads() {
  if (!existsSync('native/index.d.cts')) return false;
  return readdirSync('native')
    .filter((file) => file.endsWith('.node'))
    .some((file) => {
      const probe = spawnSync(process.execPath, ['-e', `require('./native/${file}')`], {
        stdio: 'ignore',
      });
      return probe.status === 0;
    });
}

function run(script) {
  const result = spawnSync('npm', ['run', '--silent', script], {
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (process.env.TESSERA_SKIP_NATIVE_BUILD !== '1' && !localBuildLoads()) run('build:native');
run('build:ts');
