// The operator console in a real browser (tests/console_browser.rs runs this; it starts the host
// with an instance of customer CUSTOMER that has usage pushed to KooGallery, calls KooGallery
// made, and a dead letter, and passes them in the environment). Headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) signs in with the admin token, finds the instance
// by its customer, opens it, reads its timeline and its usage chart, redrives its dead letter,
// reads the exchange log and its chart, is refused a form without its CSRF token, and signs out.
// Each step asserts what the page shows and prints one line; screenshots go to SHOTS.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { launchChromium } from './chromium.mjs';
import { check, env, ok, stepsDone } from './steps.mjs';


const BASE = env('BASE_URL');
const TOKEN = env('TOKEN');
const INSTANCE = env('INSTANCE');
const CUSTOMER = env('CUSTOMER');
const HOURS = Number(env('HOURS'));
const SHOTS = env('SHOTS');
mkdirSync(SHOTS, { recursive: true });


const browser = await launchChromium();

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);

  // Without a session: 401 and the sign-in form; a wrong token is refused.
  let response = await page.goto(`${BASE}/admin/instances`);
  check(response.status() === 401, `unsigned page answered ${response.status()}`);
  check(await page.locator('input[name=token]').isVisible(), 'no sign-in form');
  await page.fill('input[name=token]', 'not-the-token-of-this-host');
  await Promise.all([page.waitForLoadState(), page.click('button[type=submit]')]);
  check((await page.textContent('.error')).includes('not this host'), 'a wrong token was not refused');
  ok('without a session the console answers 401 with the sign-in form, and refuses a wrong token');

  await page.fill('input[name=token]', TOKEN);
  await Promise.all([page.waitForURL(`${BASE}/admin/instances`), page.click('button[type=submit]')]);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'koogallery_admin');
  check(session && session.httpOnly && session.sameSite === 'Strict', `session cookie ${JSON.stringify(session)}`);
  ok('signed in: an HttpOnly, SameSite=Strict session cookie');

  // Find the buyer's instance by customer.
  await page.fill('#search input[name=customer]', CUSTOMER);
  await Promise.all([page.waitForLoadState(), page.click('#search button[type=submit]')]);
  const rows = page.locator('#instances tr');
  check((await rows.count()) === 2, `expected one instance row, got ${(await rows.count()) - 1}`);
  check((await rows.nth(1).textContent()).includes(INSTANCE), 'the row is not the instance');
  check((await rows.nth(1).textContent()).includes('active'), 'the row does not say active');
  await page.screenshot({ path: join(SHOTS, 'instances.png'), fullPage: true });
  ok(`found ${INSTANCE} by customer ${CUSTOMER}, active`);

  // Open it: summary, timeline, dead letter, usage chart.
  await Promise.all([page.waitForLoadState(), page.click(`#instances a:text("${INSTANCE}")`)]);
  check((await page.textContent('h1')).includes(INSTANCE), 'not the instance page');
  check((await page.textContent('#summary')).includes(CUSTOMER), 'the summary does not name the customer');
  const moments = await page.locator('#timeline li').allTextContents();
  check(moments.some((m) => m.includes('created')) && moments.some((m) => m.includes('provisioned')),
    `timeline lacks the events: ${moments.join(' | ')}`);
  check(moments.some((m) => m.includes('queryInstance')), 'timeline lacks the calls KooGallery made');
  check(moments.some((m) => m.includes('dead-lettered')), 'timeline lacks the dead letter');
  const ingested = page.locator('#usage-chart rect.ingested');
  const pushed = page.locator('#usage-chart rect.pushed');
  check((await ingested.count()) >= HOURS, `usage chart has ${await ingested.count()} hours, expected ${HOURS}`);
  const heights = await pushed.evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('height'))));
  check(heights.filter((h) => h > 0).length >= HOURS, `pushed bars: ${heights}`);
  check(!(await page.textContent('#record')).includes('pw-'), 'the record shows a password');
  check((await page.locator('#dead-letters tr').count()) === 2, 'expected one dead letter');
  await page.screenshot({ path: join(SHOTS, 'instance.png'), fullPage: true });
  ok(`instance page: summary, ${moments.length} moments on the timeline, ${await ingested.count()} hours of usage pushed and accepted, one dead letter`);

  // Redrive it.
  await Promise.all([page.waitForLoadState(), page.click('#dead-letters button.redrive')]);
  check((await page.textContent('#note')).startsWith('Redriven: '), `no note: ${await page.textContent('main')}`);
  check((await page.textContent('main')).includes('No dead letters.'), 'the dead letter is still listed');
  await page.screenshot({ path: join(SHOTS, 'redriven.png'), fullPage: true });
  ok('redriven from the instance page; the page says so and lists no dead letter');

  // The exchange log: its chart, the calls, the operator's redrive.
  await Promise.all([page.waitForLoadState(), page.click('header a:text("Exchanges")')]);
  const bars = await page.locator('#callbacks-chart rect').count();
  check(bars >= 1, 'the callbacks chart is empty');
  const legend = await page.textContent('.legend');
  check(legend.includes('000000'), `the legend lacks 000000: ${legend}`);
  const table = await page.textContent('#exchanges');
  check(table.includes('queryInstance') && table.includes('redrive'), 'the log lacks the calls or the redrive');
  await page.screenshot({ path: join(SHOTS, 'exchanges.png'), fullPage: true });
  ok(`exchange log: ${bars} bars of calls per minute, the calls and the redrive listed`);

  // A form without this session's CSRF token is refused, even with the cookie. (The pages'
  // Content-Security-Policy also refuses a script's fetch: the form is posted as a page would.)
  await Promise.all([page.waitForLoadState(), page.click('header a:text("Dead letters")')]);
  await page.locator('form:has(#reconcile) input[name=csrf]').evaluate((input) => { input.value = 'forged'; });
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/admin/reconcile')),
    page.click('#reconcile'),
  ]);
  check(refused.status() === 403, `a forged CSRF token answered ${refused.status()}`);
  await page.waitForLoadState();
  check((await page.textContent('main')).includes('CSRF'), 'the refusal does not say why');
  ok('a form with a forged CSRF token is refused (403), whatever the cookie');

  // The same form with its own token runs a reconciler pass.
  await page.goto(`${BASE}/admin/dead-letters`);
  await Promise.all([page.waitForLoadState(), page.click('#reconcile')]);
  check((await page.textContent('#note')).startsWith('Reconciler pass'), 'no reconciler note');
  ok('a reconciler pass on demand, reported on the page');

  // Sign out: the pages ask for the token again.
  await Promise.all([page.waitForURL(`${BASE}/admin/login`), page.click('header button[type=submit]')]);
  response = await page.goto(`${BASE}/admin/instances`);
  check(response.status() === 401, `after signing out the page answered ${response.status()}`);
  ok('signed out: the console answers 401 again');
} catch (e) {
  console.error(`FAIL: step ${stepsDone() + 1}: ${e.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
