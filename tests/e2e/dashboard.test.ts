// End-to-end: the real daemon, the built dashboard, and Debian's Chromium.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_MISSING, chromiumInstalled, launchChromium, openWatchedPage } from './browser.js';
import { freePorts, repoRoot, startDaemon, type RunningDaemon } from './daemon.js';

const hasChromium = chromiumInstalled();
const WAIT = { timeout: 10_000, interval: 100 };

if (!hasChromium && !process.env.CI) console.warn(`[e2e] skipping dashboard tests: ${CHROMIUM_MISSING}`);

// In CI a missing browser is a broken environment, not a reason to go green.
if (!hasChromium && process.env.CI) {
  it('has Chromium installed (required in CI)', () => {
    throw new Error(CHROMIUM_MISSING);
  });
}

describe.skipIf(!hasChromium)(hasChromium ? 'dashboard' : `dashboard (skipped: ${CHROMIUM_MISSING})`, () => {
  let daemon: RunningDaemon;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let ports: number[];
  let unusedPort: number;
  let outsidePort: number;
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    daemon = await startDaemon();
    // Picked after the daemon has bound its API port, so they cannot collide with it.
    const picked = await freePorts(5);
    unusedPort = picked[0]!;
    outsidePort = picked[1]!;
    ports = picked.slice(2);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    page = await openWatchedPage(context, { pageErrors, cspViolations });
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await daemon?.stop();
  });

  const peerPortInput = () => page.getByRole('textbox', { name: 'Peer port' });
  const addPeerButton = () => page.getByRole('button', { name: 'Add peer', exact: true });
  const peerList = () => page.getByRole('list', { name: 'Peers' });
  const peerButton = (port: number) => page.getByRole('button', { name: `Peer ${port}`, exact: true });
  const peerItem = (port: number) => peerList().getByRole('listitem').filter({ has: peerButton(port) });
  const connectionList = () => page.getByRole('list', { name: 'Connections' });
  const connectionTo = (port: number): Locator =>
    connectionList().getByRole('article', { name: new RegExp(`:${port}$`) });

  /** REST from outside the page, as another client (a script, another tab) would. */
  function api(method: string, route: string, body?: unknown): Promise<Response> {
    return fetch(daemon.origin + route, {
      method,
      headers: {
        Authorization: `Bearer ${daemon.token}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function addPeer(port: number): Promise<void> {
    await peerPortInput().fill(String(port));
    await addPeerButton().click();
  }

  it('opens with the token removed from the address bar and a friendly empty state', async () => {
    await page.goto(daemon.url);
    expect(new URL(page.url()).searchParams.has('token')).toBe(false);
    await page.getByText('No peers yet — add one by port').waitFor();
    await expect.poll(() => page.getByRole('status', { name: 'Event stream: live' }).count(), WAIT).toBe(1);
    // Marks this document; if anything reloads the page, the marker is gone.
    await page.evaluate(() => ((globalThis as unknown as { e2eMarker: string }).e2eMarker = 'same-document'));
  });

  it('adds three peers that connect to each other, live', async () => {
    for (const port of ports) {
      await addPeer(port);
      await peerButton(port).waitFor();
    }
    const [first, second, third] = ports as [number, number, number];

    await peerButton(first).click();
    await expect.poll(() => peerButton(first).getAttribute('aria-current'), WAIT).toBe('true');
    await expect.poll(() => connectionTo(second).count(), WAIT).toBe(1);
    await expect.poll(() => connectionTo(third).count(), WAIT).toBe(1);
    await expect.poll(() => connectionList().getByRole('listitem').count(), WAIT).toBe(2);

    // Every peer's count in the list follows the mesh without a reload.
    for (const port of ports) {
      await expect.poll(() => peerItem(port).textContent(), WAIT).toContain('2 connections');
    }

    // Switching the selection is instant: the other peer's connections are already in state.
    await peerButton(second).click();
    await expect.poll(() => connectionTo(first).count(), WAIT).toBe(1);
    await expect.poll(() => connectionTo(third).count(), WAIT).toBe(1);
    await peerButton(first).click();
    await expect.poll(() => connectionTo(second).count(), WAIT).toBe(1);

    expect(await page.evaluate(() => (globalThis as unknown as { e2eMarker?: string }).e2eMarker)).toBe('same-document');

    const dir = path.join(repoRoot, 'test-results');
    await mkdir(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, 'dashboard.png'), fullPage: true, animations: 'disabled' });
  });

  it('follows changes made by other clients through the event stream', async () => {
    const [first] = ports as [number];
    expect((await api('POST', '/api/peers', { port: outsidePort })).status).toBe(201);
    await peerButton(outsidePort).waitFor();
    await expect.poll(() => connectionTo(outsidePort).count(), WAIT).toBe(1);
    await expect.poll(() => peerItem(first).textContent(), WAIT).toContain('3 connections');

    expect((await api('DELETE', `/api/peers/${outsidePort}`)).status).toBe(204);
    await expect.poll(() => peerButton(outsidePort).count(), WAIT).toBe(0);
    await expect.poll(() => connectionTo(outsidePort).count(), WAIT).toBe(0);
    await expect.poll(() => peerItem(first).textContent(), WAIT).toContain('2 connections');
  });

  it('shows a readable error when the port is already taken by a peer', async () => {
    const [first] = ports as [number];
    await addPeer(first);
    const alert = page.getByRole('alert').filter({ hasText: /in use/i });
    await alert.waitFor();
    expect(await alert.textContent()).toContain(String(first));
    await peerPortInput().fill('');
  });

  it('shows a readable error for a port out of range', async () => {
    await addPeer(70000);
    await page.getByRole('alert').filter({ hasText: /invalid port/i }).waitFor();
    await peerPortInput().fill('');
  });

  it('shows a readable error when connecting to a remote that is not there', async () => {
    const form = page.getByRole('form', { name: 'Connect to a remote peer' });
    await form.getByRole('textbox', { name: 'Remote host' }).fill('127.0.0.1');
    await form.getByRole('textbox', { name: 'Remote port' }).fill(String(unusedPort));
    await form.getByRole('button', { name: 'Connect', exact: true }).click();
    await form.getByRole('alert').waitFor();
    expect((await form.getByRole('alert').textContent())?.trim().length).toBeGreaterThan(10);
  });

  it('removes a peer from the list and from the selected peer’s connections', async () => {
    const [first, , third] = ports as [number, number, number];
    await expect.poll(() => peerButton(first).getAttribute('aria-current'), WAIT).toBe('true');

    await page.getByRole('button', { name: `Remove peer ${third}`, exact: true }).click();

    await expect.poll(() => peerButton(third).count(), WAIT).toBe(0);
    await expect.poll(() => connectionTo(third).count(), WAIT).toBe(0);
    await expect.poll(() => connectionList().getByRole('listitem').count(), WAIT).toBe(1);
    await expect.poll(() => peerItem(first).textContent(), WAIT).toContain('1 connection');
    await page.screenshot({ path: path.join(repoRoot, 'test-results', 'dashboard-after-remove.png'), fullPage: true, animations: 'disabled' });
  });

  it('explains a missing or rejected token instead of showing a broken dashboard', async () => {
    const other = await context.newPage();
    try {
      await other.goto(daemon.origin + '/');
      await other.getByRole('heading', { name: 'No access token' }).waitFor();
      await other.goto(daemon.origin + '/?token=not-the-token');
      await other.getByRole('heading', { name: 'Access token rejected' }).waitFor();
    } finally {
      await other.close();
    }
  });

  it('ran without page errors or CSP violations', () => {
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
