// Headless Chromium for the browser tests: Debian's /usr/bin/chromium (scripts/browser.sh
// installs it), driven by playwright-core, with what this closed machine needs: no background
// networking (its connections would be refused, many at a time), no component updates, no sync.

import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
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
    timeout: 30_000,
  });
}
