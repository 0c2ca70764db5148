// Interoperability: a Python peer written from docs/PROTOCOL.md alone (tests/interop/meshdrop_peer.py,
// stdlib ssl + the openssl CLI) dials a real meshdrop daemon process. It checks that the document is
// enough to talk to meshdrop: TLS 1.3 + ALPN + client certificate, fingerprint ids, HELLO, PING/PONG,
// CLOSE, and the refusals the document specifies.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EventClient } from '../helpers/api.js';
import { ROOT, spawnDaemon, tempDir, type DaemonProcess } from '../helpers/daemon.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const PEER_SCRIPT = join(ROOT, 'tests', 'interop', 'meshdrop_peer.py');

function available(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

const missing = [
  available('python3', ['--version']) ? null : 'python3',
  available('openssl', ['version']) ? null : 'openssl',
].filter((x): x is string => x !== null);
const CI = Boolean(process.env.CI);
const SKIP_REASON = `python interop tests skipped: ${missing.join(' and ')} not found on PATH (set CI=1 to make this a failure)`;
if (missing.length > 0 && !CI) console.warn(SKIP_REASON);

/** One line of the Python peer's stdout. */
interface PyEvent {
  event: string;
  [field: string]: any;
}

class PyPeer {
  readonly events: PyEvent[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private partial = '';

  constructor(readonly proc: ChildProcess, readonly args: string[]) {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      this.partial += chunk;
      const lines = this.partial.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.events.push(JSON.parse(line) as PyEvent);
        } catch {
          this.events.push({ event: 'unparsed', line });
        }
      }
    });
    proc.stderr!.on('data', (d) => (this.stderr += String(d)));
    this.exited = new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
      else proc.once('exit', (code) => resolve(code));
    });
  }

  all(name: string): PyEvent[] {
    return this.events.filter((e) => e.event === name);
  }

  first(name: string): PyEvent | undefined {
    return this.events.find((e) => e.event === name);
  }

  waitEvent(name: string, timeoutMs = 10_000): Promise<PyEvent> {
    return waitFor(`python peer event "${name}" (${this.args.join(' ')})`, () => {
      const found = this.first(name);
      if (found) return found;
      if (this.proc.exitCode !== null) throw new Error(`python peer exited ${this.proc.exitCode}; stdout: ${this.dump()} stderr: ${this.stderr}`);
      return undefined;
    }, { timeoutMs });
  }

  /** Waits for the process to end on its own; returns its exit code. */
  async finished(timeoutMs = 15_000): Promise<number | null> {
    await waitFor(`python peer exit (${this.args.join(' ')})`, () => this.proc.exitCode !== null || this.proc.signalCode !== null, { timeoutMs });
    return this.exited;
  }

  dump(): string {
    return this.events.map((e) => JSON.stringify(e)).join('\n');
  }
}

const running = new Set<PyPeer>();

function runPeer(args: string[]): PyPeer {
  const proc = spawn('python3', [PEER_SCRIPT, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const peer = new PyPeer(proc, args);
  running.add(peer);
  void peer.exited.then(() => running.delete(peer));
  return peer;
}

if (missing.length > 0 && CI) {
  it('python3 and openssl are available (required when CI is set)', () => {
    expect.fail(`CI is set but ${missing.join(' and ')} not found on PATH: the python interop tests cannot run`);
  });
}

describe.skipIf(missing.length > 0)(missing.length > 0 ? SKIP_REASON : 'a Python peer written from docs/PROTOCOL.md', () => {
  let dir: { path: string; remove(): void };
  let daemon: DaemonProcess;
  let events: EventClient;
  let peerPort: number;
  let listenPort: number;
  let peerId: string;

  beforeAll(async () => {
    dir = tempDir('meshdrop-interop-');
    daemon = await spawnDaemon(dir.path); // FAST timings: heartbeat 50 ms, timeout 400 ms, handshake 2000 ms
    events = daemon.client.events();
    await events.opened;
    const ports = await freePorts(1);
    peerPort = ports[0]!;
    listenPort = 0; // the Python peer only dials: HELLO port 0 means it accepts no connections
    const peer = await daemon.client.addPeer(peerPort);
    peerId = peer.id;
    expect(peerId).toMatch(/^[0-9a-f]{64}$/);
  });

  afterEach(async () => {
    for (const peer of [...running]) {
      if (peer.proc.exitCode === null && peer.proc.signalCode === null) peer.proc.kill('SIGKILL');
      await peer.exited;
    }
    running.clear();
  });

  afterAll(async () => {
    events?.close();
    await daemon?.stop();
    dir?.remove();
  });

  const base = (): string[] => ['--host', '127.0.0.1', '--port', String(peerPort), '--listen-port', String(listenPort)];

  /** Runs a peer that should be refused and returns the CLOSE it received. */
  async function refusedWith(extra: string[]): Promise<PyEvent> {
    const py = runPeer([...base(), '--hold-ms', '3000', ...extra]);
    const close = await py.waitEvent('close_received');
    expect(await py.finished()).toBe(0);
    expect(py.first('open'), py.dump()).toBeUndefined();
    return close;
  }

  it('the codec reproduces the byte examples and the fingerprint test vector of the document', async () => {
    const py = runPeer(['--self-test']);
    const result = await py.waitEvent('self_test');
    expect(await py.finished()).toBe(0);
    expect(result.failures, py.dump()).toEqual([]);
  });

  it('connects, keeps the link alive past several heartbeat timeouts, and closes with closed_by_user', async () => {
    const py = runPeer([...base(), '--hold-ms', '1500', '--ping-interval-ms', '100']);
    const identity = await py.waitEvent('identity');
    const pyId: string = identity.id;
    expect(pyId).toMatch(/^[0-9a-f]{64}$/);

    // TLS as the document prescribes, and the remote fingerprint is meshdrop's id.
    const tls = await py.waitEvent('tls');
    expect(tls).toMatchObject({ version: 'TLSv1.3', alpn: 'meshdrop/1', remote_fingerprint: peerId });
    const open = await py.waitEvent('open');
    expect(open).toMatchObject({ remote_id: peerId, version: 1, remote_port: peerPort, fingerprint_verified: true });

    // While the Python peer holds: the daemon lists it as an incoming connection with the announced port.
    const conn = await waitFor('daemon lists the python peer', async () =>
      (await daemon.client.connections(peerPort)).find((c) => c.id === pyId && c.state === 'open'));
    expect(conn).toMatchObject({ id: pyId, direction: 'in', port: listenPort, state: 'open', local: false });
    // The daemon measured an RTT, i.e. the Python peer's PONG matched its PING.
    await waitFor('daemon RTT to the python peer', async () =>
      (await daemon.client.connections(peerPort)).find((c) => c.id === pyId && typeof c.rttMs === 'number'));

    expect(await py.finished()).toBe(0);
    const log = py.dump();

    // It was PINGed and answered; its own PINGs were answered with matching PONGs.
    const pings = py.all('ping');
    expect(pings.length, log).toBeGreaterThanOrEqual(1);
    expect(pings.every((p) => p.answered === true), log).toBe(true);
    expect(py.all('pong').filter((p) => p.matched === true).length, log).toBeGreaterThanOrEqual(1);

    // It held for the whole 1500 ms (> 3 × the daemon's 400 ms heartbeat timeout) without being closed:
    // no CLOSE received, the hold ended on its own clock, and then it sent its own CLOSE.
    expect(py.first('close_received'), log).toBeUndefined();
    const hold = py.first('hold_over');
    expect(hold?.held_ms, log).toBeGreaterThanOrEqual(1500);
    const names = py.events.map((e) => e.event);
    expect(names.indexOf('hold_over'), log).toBeLessThan(names.indexOf('close_sent'));
    expect(py.first('close_sent'), log).toMatchObject({ code: 'closed_by_user' });
    expect(py.first('closed'), log).toMatchObject({ reason: 'closed_by_user' });
    // meshdrop kept PINGing past its own heartbeat timeout (its nonces are its monotonic clock in ns).
    const first = BigInt(pings[0]!.nonce);
    const last = BigInt(pings[pings.length - 1]!.nonce);
    expect(Number((last - first) / 1_000_000n), log).toBeGreaterThan(400);

    // Afterwards the daemon has dropped the connection and reports why.
    await waitFor('daemon forgets the python peer', async () =>
      !(await daemon.client.connections(peerPort)).some((c) => c.id === pyId));
    const opened = await events.waitFor('connection.opened for the python peer',
      (m) => m.type === 'connection.opened' && m.data?.connection?.id === pyId);
    expect(opened.data).toMatchObject({ port: peerPort, connection: { direction: 'in', port: listenPort } });
    const closed = await events.waitFor('connection.closed for the python peer',
      (m) => m.type === 'connection.closed' && m.data?.connection?.id === pyId);
    expect(closed.data.port).toBe(peerPort);
    expect(closed.data.reason.code).toBe('closed_by_user');
  });

  it('a HELLO id that is not the certificate fingerprint is refused with identity_mismatch', async () => {
    const close = await refusedWith(['--lie-about-id']);
    expect(close).toMatchObject({ code: 'identity_mismatch', state: 'handshaking' });
  });

  it('HELLO version 0 is refused with bad_payload (version must be >= 1)', async () => {
    const close = await refusedWith(['--version', '0']);
    expect(close.code).toBe('bad_payload');
  });

  it('a PING before HELLO is refused with unexpected_message', async () => {
    const close = await refusedWith(['--ping-before-hello']);
    expect(close.code).toBe('unexpected_message');
  });

  it('a dialler announcing version 2 gets the negotiated version 1', async () => {
    const py = runPeer([...base(), '--version', '2', '--hold-ms', '100']);
    const open = await py.waitEvent('open');
    expect(open).toMatchObject({ version: 1, remote_id: peerId });
    expect(await py.finished()).toBe(0);
  });

  describe('other refusals the document specifies', () => {
    const hello = (fields: object): string[] => ['--hello-extra', JSON.stringify(fields)];
    const closeFrame = (payload: string): string => {
      const bytes = Buffer.from(payload, 'utf8');
      const header = Buffer.alloc(5);
      header.writeUInt32BE(bytes.length, 0);
      header.writeUInt8(0x04, 4);
      return Buffer.concat([header, bytes]).toString('hex');
    };
    const cases: Array<[string, string[], string]> = [
      ['no client certificate', ['--no-client-cert'], 'identity_mismatch'],
      ['no ALPN offered', ['--alpn', ''], 'wrong_application'],
      ['header 00 00 00 09 02 (PING of 9 bytes)', ['--raw-first', '0000000902'], 'frame_too_large'],
      ['header ff ff ff ff 01 (huge HELLO)', ['--raw-first', 'ffffffff01'], 'frame_too_large'],
      ['header 00 00 00 00 10 (type 0x10)', ['--raw-first', '0000000010'], 'unknown_frame'],
      ['header ff ff ff ff 10 (type checked before length)', ['--raw-first', 'ffffffff10'], 'unknown_frame'],
      ['empty HELLO', ['--raw-first', '0000000001'], 'bad_payload'],
      ['PING with 7 bytes', ['--raw-first', '0000000702' + '00'.repeat(7)], 'bad_payload'],
      ['HELLO version true', hello({ version: true }), 'bad_payload'],
      ['HELLO version 2^53', hello({ version: 2 ** 53 }), 'bad_payload'],
      ['HELLO port 65536', hello({ port: 65536 }), 'bad_payload'],
      ['HELLO id in upper case', hello({ id: 'A'.repeat(64) }), 'bad_payload'],
      ['HELLO agent of 129 chars', hello({ agent: 'x'.repeat(129) }), 'bad_payload'],
      ['HELLO with 33 features', hello({ features: Array.from({ length: 33 }, (_, i) => `f${i}`) }), 'bad_payload'],
      ['no HELLO at all', ['--raw-first', ''], 'handshake_timeout'],
      ['a CLOSE with a bad code during the handshake', ['--raw-first', closeFrame('{"code":"BAD"}')], 'bad_payload'],
    ];
    for (const [name, extra, code] of cases) {
      it(`${name} -> CLOSE ${code}`, async () => {
        const close = await refusedWith(extra);
        expect(close.code).toBe(code);
      });
    }

    it('a non-overlapping ALPN is refused with a no_application_protocol alert', async () => {
      const py = runPeer([...base(), '--alpn', 'other/1']);
      const err = await py.waitEvent('tls_error');
      expect(err.error).toMatch(/no application protocol/i);
      expect(await py.finished()).toBe(0);
    });

    it('TLS 1.2 is refused with a protocol_version alert', async () => {
      const py = runPeer([...base(), '--tls12']);
      const err = await py.waitEvent('tls_error');
      expect(err.error).toMatch(/protocol version/i);
      expect(await py.finished()).toBe(0);
    });

    it('HELLO with null/absent optional fields and unknown fields is accepted', async () => {
      const py = runPeer([...base(), '--hold-ms', '100', ...hello({ agent: null, features: null, future_field: { x: 1 }, version: 1.0 })]);
      await py.waitEvent('open');
      expect(await py.finished()).toBe(0);
      expect(py.first('close_received'), py.dump()).toBeUndefined();
    });

    it('whole frames before a bad header are handled first: HELLO + type 0x10 in one write', async () => {
      const py = runPeer([...base(), '--hold-ms', '3000', '--append-after-hello', '0000000010']);
      await py.waitEvent('open');
      const close = await py.waitEvent('close_received');
      expect(close).toMatchObject({ code: 'unknown_frame', state: 'open' });
    });

    it('a CLOSE that does not decode is answered with CLOSE bad_payload', async () => {
      const py = runPeer([...base(), '--hold-ms', '3000', '--append-after-hello', closeFrame('{"code":"Not Valid"}')]);
      await py.waitEvent('open');
      const close = await py.waitEvent('close_received');
      expect(close).toMatchObject({ code: 'bad_payload', state: 'open' });
    });
  });

  describe('heartbeats, duplicates and endings as the document describes them', () => {
    async function closedEventFor(id: string): Promise<any> {
      return events.waitFor(`connection.closed for ${id}`, (m) => m.type === 'connection.closed' && m.data?.connection?.id === id);
    }

    it('a silent peer (no PONG, no PING) is closed with heartbeat_timeout', async () => {
      const py = runPeer([...base(), '--hold-ms', '5000', '--no-pong', '--ping-interval-ms', '0']);
      await py.waitEvent('open');
      const close = await py.waitEvent('close_received');
      expect(close).toMatchObject({ code: 'heartbeat_timeout', state: 'open' });
    });

    it('any received byte counts as life: own PINGs keep the link up without answering PINGs', async () => {
      const py = runPeer([...base(), '--hold-ms', '1500', '--no-pong', '--ping-interval-ms', '100']);
      expect(await py.finished()).toBe(0);
      expect(py.first('close_received'), py.dump()).toBeUndefined();
      expect(py.first('closed'), py.dump()).toMatchObject({ reason: 'closed_by_user' });
    });

    it('same-direction duplicate: the newer connection wins, the older gets duplicate_connection', async () => {
      const idDir = tempDir('meshdrop-interop-id-');
      try {
        const older = runPeer([...base(), '--hold-ms', '10000', '--ping-interval-ms', '100', '--identity-dir', idDir.path]);
        await older.waitEvent('open');
        const newer = runPeer([...base(), '--hold-ms', '300', '--ping-interval-ms', '100', '--identity-dir', idDir.path]);
        await newer.waitEvent('open');
        expect(newer.first('identity')?.id).toBe(older.first('identity')?.id);
        const close = await older.waitEvent('close_received');
        expect(close).toMatchObject({ code: 'duplicate_connection', state: 'open' });
        expect(await newer.finished()).toBe(0);
        expect(newer.first('close_received'), newer.dump()).toBeUndefined();
      } finally {
        idDir.remove();
      }
    });

    it('an unknown close code is accepted and reported as is', async () => {
      const py = runPeer([...base(), '--hold-ms', '100', '--close-code', 'some_future_code']);
      const identity = await py.waitEvent('identity');
      expect(await py.finished()).toBe(0);
      const closed = await closedEventFor(identity.id);
      expect(closed.data.reason.code).toBe('some_future_code');
    });

    it('ending without CLOSE is connection_lost on the daemon side', async () => {
      const py = runPeer([...base(), '--hold-ms', '100', '--end-mode', 'drop']);
      const identity = await py.waitEvent('identity');
      expect(await py.finished()).toBe(0);
      const closed = await closedEventFor(identity.id);
      expect(closed.data.reason.code).toBe('connection_lost');
    });

    it('ending the stream inside a frame is bad_payload on the daemon side', async () => {
      const py = runPeer([...base(), '--hold-ms', '100', '--end-mode', 'partial']);
      const identity = await py.waitEvent('identity');
      expect(await py.finished()).toBe(0);
      const closed = await closedEventFor(identity.id);
      expect(closed.data.reason.code).toBe('bad_payload');
    });
  });
});
