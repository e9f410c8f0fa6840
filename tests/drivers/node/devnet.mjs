// Starts the real `fluence devnet` on free loopback ports in a temporary
// directory, resolves once it prints its MongoDB endpoint, and stops it
// with SIGTERM. Each scenario file starts its own; it dies with the test
// process that started it, as in devnet.py.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

/** `$FLUENCE_BIN`, else the debug build `.ci/run` makes. */
export function fluenceBinary() {
  const bin = process.env.FLUENCE_BIN ?? path.join(REPO, 'target', 'debug', 'fluence');
  if (!existsSync(bin)) {
    throw new Error(`no fluence binary at ${bin}: run \`cargo build -p fluence-cli\` or set FLUENCE_BIN`);
  }
  return bin;
}

/**
 * `[command, args]` that runs `bin args` so that Linux sends it SIGTERM when
 * this process dies, even by SIGKILL: util-linux `setpriv --pdeathsig` sets
 * PR_SET_PDEATHSIG, then execs `bin` (Node has no pre-exec hook for it, and
 * devnet.py does the same with prctl). Without setpriv (not Linux), `stop()`
 * still ends the devnet on a normal exit.
 */
function dyingWithThisProcess(bin, args) {
  const setpriv = SETPRIV_PATHS.find((candidate) => existsSync(candidate));
  return setpriv === undefined ? [bin, args] : [setpriv, ['--pdeathsig', 'SIGTERM', '--', bin, ...args]];
}

export class Devnet {
  static async start() {
    const dir = mkdtempSync(path.join(tmpdir(), 'fluence-node-drivers-'));
    const [command, args] = dyingWithThisProcess(
      fluenceBinary(),
      ['devnet', '--nodes', '1', '--dir', dir, '--http', '127.0.0.1:0',
        '--mongo', '127.0.0.1:0', '--p2p-port', '0'],
    );
    const child = spawn(
      command,
      args,
      {
        env: { ...process.env, FLUENCE_PASSPHRASE: 'driver suites passphrase', FLUENCE_LOG: process.env.FLUENCE_LOG ?? 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const output = [];
    const uri = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fluence devnet did not start:\n${output.join('')}`)), START_TIMEOUT_MS);
      let pending = '';
      child.stdout.on('data', (chunk) => {
        output.push(chunk.toString());
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop();
        for (const line of lines) {
          const trimmed = line.trim();
          if (trimmed.startsWith('MongoDB:')) {
            clearTimeout(timer);
            resolve(trimmed.split(/\s+/).pop());
          }
        }
      });
      child.stderr.on('data', (chunk) => output.push(chunk.toString()));
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`fluence devnet exited with ${code}:\n${output.join('')}`));
      });
    });
    return new Devnet(child, dir, uri);
  }

  constructor(child, dir, uri) {
    this.child = child;
    this.dir = dir;
    /** The MongoDB connection string, `mongodb://127.0.0.1:PORT/`. */
    this.uri = uri;
  }

  /** SIGTERM, wait for the exit, remove the data directory. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
