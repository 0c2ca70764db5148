// End-to-end: pausing and resuming a send from the dashboard, and answering offers
// from a peer of another daemon (accept, decline, trust), with real daemons and
// Debian's Chromium. The transfers are started by REST; the page does the rest.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_MISSING, chromiumInstalled, launchChromium, openWatchedPage } from './browser.js';
import { freePorts, repoRoot, startDaemon, type RunningDaemon } from './daemon.js';

const hasChromium = chromiumInstalled();
const WAIT = { timeout: 10_000, interval: 100 };
const TRANSFER_WAIT = { timeout: 60_000, interval: 100 };
// Sparse on the sending side, so it costs no disk there; big enough to still be moving when Pause is clicked.
const BIG_NAME = 'disk-image.raw';
const BIG_SIZE = 300 * 1024 * 1024;

if (!hasChromium && !process.env.CI) console.warn(`[e2e] skipping transfer control tests: ${CHROMIUM_MISSING}`);

if (!hasChromium && process.env.CI) {
  it('has Chromium installed (required in CI)', () => {
    throw new Error(CHROMIUM_MISSING);
  });
}

interface WireTransfer {
  id: string;
  name: string;
  state: string;
  direction: 'in' | 'out';
  error: { code: string; message: string } | null;
}

async function rest<T>(daemon: RunningDaemon, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${daemon.origin}${route}`, {
    method,
    headers: {
      Authorization: `Bearer ${daemon.token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

describe.skipIf(!hasChromium)(
  hasChromium ? 'transfer control' : `transfer control (skipped: ${CHROMIUM_MISSING})`,
  () => {
    let daemon: RunningDaemon;
    let other: RunningDaemon;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let sender: number;
    let receiver: number;
    let remote: number;
    let remoteId: string;
    let workDir: string;
    const pageErrors: string[] = [];
    const cspViolations: string[] = [];

    beforeAll(async () => {
      daemon = await startDaemon();
      other = await startDaemon();
      [sender, receiver, remote] = (await freePorts(3)) as [number, number, number];
      workDir = await mkdtemp(path.join(tmpdir(), 'meshdrop-e2e-control-'));
      browser = await launchChromium();
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await openWatchedPage(context, { pageErrors, cspViolations });
      await mkdir(path.join(repoRoot, 'test-results'), { recursive: true });
    });

    afterAll(async () => {
      await context?.close();
      await browser?.close();
      await daemon?.stop();
      await other?.stop();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    });

    const peerButton = (port: number) => page.getByRole('button', { name: `Peer ${port}`, exact: true });
    const transferList = () => page.getByRole('list', { name: 'Transfers' });
    const receivedList = () => page.getByRole('list', { name: 'Received files' });
    const transferRow = (barName: string) =>
      transferList()
        .getByRole('listitem')
        .filter({ has: page.getByRole('progressbar', { name: barName, exact: true }) });
    const stateOf = (barName: string) =>
      transferRow(barName).getByTitle(/^Transfer state: /).textContent().then((t) => t?.replace('Transfer state:', '').trim());

    async function select(port: number): Promise<void> {
      await peerButton(port).click();
      await expect.poll(() => peerButton(port).getAttribute('aria-current'), WAIT).toBe('true');
    }

    async function connectionsOf(d: RunningDaemon, port: number) {
      const body = await rest<{ connections: { id: string; shortId: string; host: string; port: number; local: boolean }[] }>(
        d,
        'GET',
        `/api/peers/${port}/connections`,
      );
      return body.connections;
    }

    async function sendByRest(d: RunningDaemon, from: number, to: string, file: string): Promise<WireTransfer> {
      const body = await rest<{ transfers: WireTransfer[] }>(d, 'POST', `/api/peers/${from}/transfers`, { to: [to], paths: [file] });
      expect(body.transfers).toHaveLength(1);
      return body.transfers[0]!;
    }

    async function smallFile(name: string): Promise<string> {
      const file = path.join(workDir, name);
      await writeFile(file, `${name}: a few bytes from another daemon\n`);
      return file;
    }

    it('pauses and resumes a send from its row', async () => {
      await rest(daemon, 'POST', '/api/peers', { port: sender });
      await rest(daemon, 'POST', '/api/peers', { port: receiver });
      // Peers of one daemon connect to each other by themselves.
      await expect.poll(async () => (await connectionsOf(daemon, sender)).length, WAIT).toBe(1);
      await page.goto(daemon.url);
      await expect.poll(() => page.getByRole('status', { name: 'Event stream: live' }).count(), WAIT).toBe(1);
      await select(sender);

      const big = path.join(workDir, BIG_NAME);
      await writeFile(big, '');
      truncateSync(big, BIG_SIZE);
      await sendByRest(daemon, sender, String(receiver), big);

      const bar = `Sending ${BIG_NAME} to ${receiver}`;
      await page.getByRole('button', { name: `Pause sending ${BIG_NAME} to ${receiver}`, exact: true }).click();
      await expect.poll(() => stateOf(bar), WAIT).toBe('paused');
      const row = transferRow(bar);
      expect(await row.textContent()).toContain('Paused');
      const resume = row.getByRole('button', { name: `Resume sending ${BIG_NAME} to ${receiver}`, exact: true });
      await resume.waitFor();
      // Still cancelable while paused; nothing left to pause.
      await row.getByRole('button', { name: `Cancel sending ${BIG_NAME} to ${receiver}`, exact: true }).waitFor();
      expect(await row.getByRole('button', { name: /^Pause/ }).count()).toBe(0);
      // A user's pause does not go on by itself.
      await new Promise((r) => setTimeout(r, 500));
      expect(await stateOf(bar)).toBe('paused');
      await row.screenshot({ path: path.join(repoRoot, 'test-results', 'transfer-paused-row.png'), animations: 'disabled' });

      await resume.click();
      await expect.poll(() => stateOf(bar), TRANSFER_WAIT).toBe('completed');
      expect(await row.textContent()).toContain('100%');
      expect(await row.getByRole('button').count()).toBe(0);
      await select(receiver);
      const incoming = `Receiving ${BIG_NAME} from ${sender}`;
      await expect.poll(() => stateOf(incoming), TRANSFER_WAIT).toBe('completed');
      await rest(daemon, 'DELETE', `/api/peers/${receiver}/files/${BIG_NAME}`);
    });

    it('asks before taking a file from a peer of another daemon, and Accept receives it', async () => {
      await rest(other, 'POST', '/api/peers', { port: remote });
      await rest(other, 'POST', `/api/peers/${remote}/connections`, { host: '127.0.0.1', port: receiver });
      await expect.poll(async () => (await connectionsOf(daemon, receiver)).filter((c) => !c.local).length, WAIT).toBe(1);
      const peers = await rest<{ peers: { port: number; id: string }[] }>(other, 'GET', '/api/peers');
      remoteId = peers.peers.find((p) => p.port === remote)!.id;
      const label = await remoteLabel();

      const file = await smallFile('offer-accepted.txt');
      const sent = await sendByRest(other, remote, String(receiver), file);
      await select(receiver);
      const bar = `Receiving offer-accepted.txt from ${label}`;
      await expect.poll(() => stateOf(bar), WAIT).toBe('offered');
      const row = transferRow(bar);
      expect(await row.textContent()).toMatch(/wants to send you offer-accepted\.txt \(\d+ B\)/);
      // Nothing moves until the user answers.
      await page.getByRole('button', { name: `Decline offer-accepted.txt from ${label}`, exact: true }).waitFor();
      await page.getByRole('button', { name: `Trust ${label} and accept`, exact: true }).waitFor();
      await row.screenshot({ path: path.join(repoRoot, 'test-results', 'transfer-offered-row.png'), animations: 'disabled' });
      await page.screenshot({ path: path.join(repoRoot, 'test-results', 'transfer-offered.png'), fullPage: true, animations: 'disabled' });

      await page.getByRole('button', { name: `Accept offer-accepted.txt from ${label}`, exact: true }).click();
      await expect.poll(() => stateOf(bar), TRANSFER_WAIT).toBe('completed');
      await expect.poll(() => receivedList().getByRole('listitem').filter({ hasText: 'offer-accepted.txt' }).count(), WAIT).toBe(1);
      await expect
        .poll(async () => (await rest<WireTransfer>(other, 'GET', `/api/transfers/${sent.id}`)).state, WAIT)
        .toBe('completed');
    });

    it('Decline refuses the file on both sides', async () => {
      const label = await remoteLabel();
      const file = await smallFile('offer-declined.txt');
      const sent = await sendByRest(other, remote, String(receiver), file);
      const bar = `Receiving offer-declined.txt from ${label}`;
      await expect.poll(() => stateOf(bar), WAIT).toBe('offered');
      await page.getByRole('button', { name: `Decline offer-declined.txt from ${label}`, exact: true }).click();
      await expect.poll(() => stateOf(bar), WAIT).toBe('rejected');
      expect(await transferRow(bar).getByRole('button').count()).toBe(0);
      const there = await rest<WireTransfer>(other, 'GET', `/api/transfers/${sent.id}`);
      expect(there.state).toBe('rejected');
      expect(there.error?.code).toBe('rejected_by_user');
      expect(await receivedList().getByRole('listitem').filter({ hasText: 'offer-declined.txt' }).count()).toBe(0);
    });

    it('"Always accept from this peer" trusts the sender, so its next file needs no answer', async () => {
      const label = await remoteLabel();
      const first = await smallFile('offer-trusted.txt');
      await sendByRest(other, remote, String(receiver), first);
      const bar = `Receiving offer-trusted.txt from ${label}`;
      await expect.poll(() => stateOf(bar), WAIT).toBe('offered');
      await page.getByRole('button', { name: `Trust ${label} and accept`, exact: true }).click();
      await expect.poll(() => stateOf(bar), TRANSFER_WAIT).toBe('completed');
      const trusted = await rest<{ trusted: string[] }>(daemon, 'GET', `/api/peers/${receiver}/trusted`);
      expect(trusted.trusted).toEqual([remoteId]);

      const second = await smallFile('from-trusted.txt');
      await sendByRest(other, remote, String(receiver), second);
      const next = `Receiving from-trusted.txt from ${label}`;
      await expect.poll(() => stateOf(next), TRANSFER_WAIT).toBe('completed');
      await expect.poll(() => receivedList().getByRole('listitem').filter({ hasText: 'from-trusted.txt' }).count(), WAIT).toBe(1);
    });

    it('ran without page errors or CSP violations', () => {
      expect(pageErrors).toEqual([]);
      expect(cspViolations).toEqual([]);
    });

    /** How the receiver's page names the other daemon's peer (its address, as the connection shows it). */
    async function remoteLabel(): Promise<string> {
      const conn = (await connectionsOf(daemon, receiver)).find((c) => c.id === remoteId);
      expect(conn).toBeDefined();
      return conn!.port > 0 ? `${conn!.host}:${conn!.port}` : conn!.shortId;
    }
  },
);
