// End-to-end: sending a file through the dashboard from one peer to another and
// downloading it on the other side, with the real daemon and Debian's Chromium.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_MISSING, chromiumInstalled, launchChromium, openWatchedPage } from './browser.js';
import { freePorts, repoRoot, startDaemon, type RunningDaemon } from './daemon.js';

const hasChromium = chromiumInstalled();
const WAIT = { timeout: 10_000, interval: 100 };
// A transfer crosses the upload, the TLS link between the peers and the receiver's disk.
const TRANSFER_WAIT = { timeout: 30_000, interval: 100 };
const FILE_NAME = 'field-report.bin';
const FILE_SIZE = 3 * 1024 * 1024;
const DROPPED_NAME = 'dropped-note.txt';

if (!hasChromium && !process.env.CI) console.warn(`[e2e] skipping transfer tests: ${CHROMIUM_MISSING}`);

if (!hasChromium && process.env.CI) {
  it('has Chromium installed (required in CI)', () => {
    throw new Error(CHROMIUM_MISSING);
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe.skipIf(!hasChromium)(hasChromium ? 'file transfers' : `file transfers (skipped: ${CHROMIUM_MISSING})`, () => {
  let daemon: RunningDaemon;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let sender: number;
  let receiver: number;
  let workDir: string;
  let source: string;
  let sourceHash: string;
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    daemon = await startDaemon();
    [sender, receiver] = (await freePorts(2)) as [number, number];
    workDir = await mkdtemp(path.join(tmpdir(), 'meshdrop-e2e-files-'));
    const data = randomBytes(FILE_SIZE);
    source = path.join(workDir, FILE_NAME);
    await writeFile(source, data);
    sourceHash = sha256(data);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await openWatchedPage(context, { pageErrors, cspViolations });
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await daemon?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const peerButton = (port: number) => page.getByRole('button', { name: `Peer ${port}`, exact: true });
  const connectionTo = (port: number): Locator =>
    page.getByRole('list', { name: 'Connections' }).getByRole('article', { name: new RegExp(`:${port}$`) });
  const transferList = () => page.getByRole('list', { name: 'Transfers' });
  const receivedList = () => page.getByRole('list', { name: 'Received files' });
  /** The row (list item) of the transfer whose progress bar has this name. */
  const transferRow = (barName: string) =>
    transferList()
      .getByRole('listitem')
      .filter({ has: page.getByRole('progressbar', { name: barName, exact: true }) });

  async function addPeer(port: number): Promise<void> {
    await page.getByRole('textbox', { name: 'Peer port' }).fill(String(port));
    await page.getByRole('button', { name: 'Add peer', exact: true }).click();
    await peerButton(port).waitFor();
  }

  it('shows two connected peers with a way to send files to each other', async () => {
    await page.goto(daemon.url);
    await expect.poll(() => page.getByRole('status', { name: 'Event stream: live' }).count(), WAIT).toBe(1);
    await addPeer(sender);
    await addPeer(receiver);
    await peerButton(sender).click();
    await expect.poll(() => connectionTo(receiver).count(), WAIT).toBe(1);

    await connectionTo(receiver).getByRole('button', { name: `Send file to peer ${receiver}`, exact: true }).waitFor();
    await page.getByText('No transfers yet').waitFor();
    await page.getByText('No files received yet').waitFor();
  });

  it('sends a file chosen with the Send file button and shows it completing', async () => {
    const sendButton = page.getByRole('button', { name: `Send file to peer ${receiver}`, exact: true });
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), sendButton.click()]);
    expect(chooser.isMultiple()).toBe(true);
    // The button opens the card's own file input; files are set on that input, as a user picks them.
    const label = `Choose files to send to peer ${receiver}`;
    expect(await chooser.element().getAttribute('aria-label')).toBe(label);
    await page.getByLabel(label, { exact: true }).setInputFiles(source);

    const bar = page.getByRole('progressbar', { name: `Sending ${FILE_NAME} to ${receiver}`, exact: true });
    await bar.waitFor({ timeout: TRANSFER_WAIT.timeout });
    await expect.poll(() => bar.getAttribute('aria-valuenow'), TRANSFER_WAIT).toBe('100');
    const row = transferRow(`Sending ${FILE_NAME} to ${receiver}`);
    await expect.poll(() => row.textContent(), TRANSFER_WAIT).toMatch(/completed/i);
    const text = (await row.textContent()) ?? '';
    expect(text).toContain('100%');
    expect(text).toContain('3.15 MB');
    // Nothing left to cancel once it is done.
    expect(await row.getByRole('button', { name: /^Cancel/ }).count()).toBe(0);
    // The outcome is announced once to screen readers.
    const updates = page.getByRole('status', { name: 'Transfer updates', exact: true });
    await expect.poll(() => updates.textContent(), WAIT).toBe(`Sent ${FILE_NAME} to ${receiver}.`);
  });

  it('sends a file dropped onto the connection card', async () => {
    const card = connectionTo(receiver);
    // What the browser hands a drop target when a file is dragged in from the desktop.
    const dataTransfer = await page.evaluateHandle((name) => {
      const dom = globalThis as unknown as {
        DataTransfer: new () => { items: { add(file: unknown): void } };
        File: new (parts: string[], name: string, options: { type: string }) => unknown;
      };
      const transfer = new dom.DataTransfer();
      transfer.items.add(new dom.File(['dropped onto a card\n'], name, { type: 'text/plain' }));
      return transfer;
    }, DROPPED_NAME);
    await card.dispatchEvent('dragenter', { dataTransfer });
    await card.dispatchEvent('dragover', { dataTransfer });
    const hint = card.getByText(`Drop to send to peer ${receiver}`);
    await hint.waitFor();
    await card.dispatchEvent('drop', { dataTransfer });
    await hint.waitFor({ state: 'detached' });

    const row = transferRow(`Sending ${DROPPED_NAME} to ${receiver}`);
    await expect.poll(() => row.textContent(), TRANSFER_WAIT).toMatch(/completed/i);
    // Newest first: the dropped file is above the first one.
    const names = await transferList().getByRole('progressbar').evaluateAll((bars) => bars.map((b) => b.getAttribute('aria-label')));
    expect(names).toEqual([`Sending ${DROPPED_NAME} to ${receiver}`, `Sending ${FILE_NAME} to ${receiver}`]);

    const dir = path.join(repoRoot, 'test-results');
    await mkdir(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, 'transfers-sender.png'), fullPage: true, animations: 'disabled' });
  });

  it('lists the file under the receiving peer, and the download is byte-identical', async () => {
    await peerButton(receiver).click();
    await expect.poll(() => peerButton(receiver).getAttribute('aria-current'), WAIT).toBe('true');

    const incoming = transferRow(`Receiving ${FILE_NAME} from ${sender}`);
    await expect.poll(() => incoming.textContent(), TRANSFER_WAIT).toMatch(/completed/i);

    const item = receivedList().getByRole('listitem').filter({ hasText: FILE_NAME });
    await expect.poll(() => item.count(), TRANSFER_WAIT).toBe(1);
    await expect.poll(() => receivedList().getByRole('listitem').count(), TRANSFER_WAIT).toBe(2);
    expect(await item.textContent()).toContain('3.15 MB');

    const link = page.getByRole('link', { name: `Download ${FILE_NAME}`, exact: true });
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    expect(download.suggestedFilename()).toBe(FILE_NAME);
    const saved = await download.path();
    expect(sha256(await readFile(saved))).toBe(sourceHash);

    await page.screenshot({ path: path.join(repoRoot, 'test-results', 'transfers.png'), fullPage: true, animations: 'disabled' });
  });

  it('deletes received files from the list and from the peer', async () => {
    await page.getByRole('button', { name: `Delete ${FILE_NAME}`, exact: true }).click();
    await expect.poll(() => receivedList().getByRole('listitem').count(), WAIT).toBe(1);
    const res = await fetch(`${daemon.origin}/api/peers/${receiver}/files`, {
      headers: { Authorization: `Bearer ${daemon.token}` },
    });
    const left = ((await res.json()) as { files: { name: string }[] }).files.map((f) => f.name);
    expect(left).toEqual([DROPPED_NAME]);

    await page.getByRole('button', { name: `Delete ${DROPPED_NAME}`, exact: true }).click();
    await page.getByText('No files received yet').waitFor();
  });

  it('shows why the daemon refused a send, until dismissed', async () => {
    await peerButton(sender).click();
    await expect.poll(() => connectionTo(receiver).count(), WAIT).toBe(1);
    // The real refusals (a connection that closed a moment ago, a full disk) cannot be staged
    // on demand; the daemon's answer for one is played back instead.
    const route = `${daemon.origin}/api/peers/${sender}/transfers`;
    await page.route(route, (r) =>
      r.fulfill({
        status: 409,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'not_connected', message: `peer ${sender} has no connection to ${receiver}` } }),
      }),
    );
    try {
      await page.getByLabel(`Choose files to send to peer ${receiver}`, { exact: true }).setInputFiles(source);
      const row = transferList().getByRole('listitem').filter({ hasText: `has no connection to ${receiver}` });
      await row.waitFor();
      expect(await row.textContent()).toContain('Not connected');
      await page.screenshot({ path: path.join(repoRoot, 'test-results', 'transfers-refused.png'), fullPage: true, animations: 'disabled' });
      await row.getByRole('button', { name: `Dismiss ${FILE_NAME}`, exact: true }).click();
      await row.waitFor({ state: 'detached' });
    } finally {
      await page.unroute(route);
    }
  });

  it('ran without page errors or CSP violations', () => {
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
