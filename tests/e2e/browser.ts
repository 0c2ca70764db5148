// Launching the system Chromium (Debian package) through playwright-core; no browser download.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_MISSING = `Chromium not found at ${CHROMIUM_PATH}; install it with: apt-get update && apt-get install -y chromium`;

export function chromiumInstalled(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A new page that records uncaught page errors and CSP violations, for tests to assert empty. */
export async function openWatchedPage(context: BrowserContext, problems: { pageErrors: string[]; cspViolations: string[] }): Promise<Page> {
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (error) => problems.pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && /content security policy/i.test(message.text())) {
      problems.cspViolations.push(message.text());
    }
  });
  return page;
}
