// scp and rsync baselines against a loopback sshd the benchmark starts itself, with
// throw-away host and client keys, so nothing of the machine's own ssh setup is used
// or changed. Skipped (with a notice) when openssh-server is not installed.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { freePort } from '../../tests/helpers/ports.js';
import { verifyLocal, type Payload } from './files.js';
import { mibPerSec } from './stats.js';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  port: number;
  hasRsync: boolean;
  versions: { ssh: string; rsync: string | null };
  scp(payload: Payload): Promise<number>;
  rsync(payload: Payload): Promise<number>;
  stop(): Promise<void>;
}

async function which(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Why scp cannot be measured here, or null when it can. */
export async function sshdMissing(): Promise<string | null> {
  if (!existsSync(SSHD)) return `${SSHD} not found (apt-get install -y openssh-server)`;
  for (const cmd of ['ssh-keygen', 'scp', 'ssh']) if (!(await which(cmd))) return `${cmd} not found (apt-get install -y openssh-client)`;
  return null;
}

export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`), { mode: 0o600 });
  // sshd insists on its privilege-separation directory when started as root.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    // scp speaks SFTP since OpenSSH 9; the built-in server needs no binary path.
    'Subsystem sftp internal-sftp',
    'LogLevel ERROR',
    '',
  ].join('\n'));
  const proc: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  await waitForBanner(port, () => (proc.exitCode !== null ? `sshd exited with ${proc.exitCode}: ${stderr}` : null));

  const sshOpts = ['-i', clientKey, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  const user = userInfo().username;
  const hasRsync = await which('rsync');
  const ssh = (await run('ssh', ['-V'])).stderr.trim();
  const rsyncVersion = hasRsync ? (await run('rsync', ['--version'])).stdout.split('\n')[0]!.trim() : null;

  /** Runs one copy command to a fresh destination, verifies the copy, removes it. */
  const timedCopy = async (what: string, cmd: string, args: (dest: string) => string[], payload: Payload) => {
    const dest = join(dir, `${what}.out`);
    await rm(dest, { force: true });
    const t0 = performance.now();
    await run(cmd, args(dest), { maxBuffer: 1024 * 1024 });
    const ms = performance.now() - t0;
    await verifyLocal(dest, payload, what);
    await rm(dest, { force: true });
    return mibPerSec(payload.size, ms);
  };

  return {
    port,
    hasRsync,
    versions: { ssh, rsync: rsyncVersion },
    scp: (payload) => timedCopy('scp', 'scp', (dest) => ['-q', '-P', String(port), ...sshOpts, payload.path, `${user}@127.0.0.1:${dest}`], payload),
    rsync: (payload) => timedCopy('rsync', 'rsync', (dest) => ['-e', ['ssh', '-p', String(port), ...sshOpts].join(' '), payload.path, `${user}@127.0.0.1:${dest}`], payload),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitForBanner(port: number, failed: () => string | null): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const why = failed();
    if (why) throw new Error(why);
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        res(String(d).startsWith('SSH-'));
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
