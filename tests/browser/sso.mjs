// Single sign-on in a real browser (tests/sso_browser.rs runs this; it sets up the provider, the
// simulated unified login and auth centre, the OIDC client and the users, and passes them in the
// environment). Two parts:
//   - a relying party (the vendor's app) on openid-client, a certified OIDC RP library: discovery,
//     authorization code + PKCE S256 + state + nonce, ID token validation, userinfo, RP-initiated
//     logout, and back-channel logout tokens verified with jose against the provider's JWKS;
//   - headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) as the buyer.
// Each step asserts and prints one line; the first failure exits non-zero saying what went wrong.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

import * as jose from 'jose';
import * as client from 'openid-client';
import { launchChromium } from './chromium.mjs';
import { check, env, ok, stepsDone } from './steps.mjs';


const ISSUER = env('ISSUER');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const RP_PORT = Number(env('RP_PORT'));
const TENANT = env('TENANT');
const TENANT_NAME = env('TENANT_NAME');
const USER_OK = env('USER_OK');
const NAME_OK = env('NAME_OK');
const USER_REFUSED = env('USER_REFUSED');
const USER_REVOKE = env('USER_REVOKE');
const CONTROL_URL = env('CONTROL_URL');

const RP = `http://127.0.0.1:${RP_PORT}`;
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const SESSION_COOKIE = 'rp_session';

const require = createRequire(import.meta.url);
const versionOf = (pkg) =>
  JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;


// ---------------------------------------------------------------------------------------------
// The relying party.

const config = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, undefined, {
  // The provider runs on loopback http in this test; openid-client is HTTPS-only by default.
  execute: [client.allowInsecureRequests],
});
const metadata = config.serverMetadata();
const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));

/** Logins under way: state → { verifier, nonce }. */
const pending = new Map();
/** The RP's own sessions: cookie value → { sub, sid, idToken, accessToken, claims, userinfo }. */
const sessions = new Map();
/** Verified back-channel logout tokens' claims, in arrival order. */
const logouts = [];
/** The logout tokens' `jti`s seen (a replay is refused). */
const seenJti = new Set();
/** Back-channel requests that failed verification (each one fails the run). */
const badLogouts = [];

function cookieOf(req, name) {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) {
      return v.join('=');
    }
  }
  return undefined;
}

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
  res.end(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>` +
      `<body><h1>${escape(title)}</h1>${body}</body></html>`,
  );
}

function redirect(res, location, headers = {}) {
  res.writeHead(302, { location, ...headers });
  res.end();
}

const signedOut = (res, why) =>
  page(res, 200, 'Vendor app', `<p id="status">signed out</p><p id="why">${escape(why)}</p>`);

async function readBody(req) {
  const chunks = [];
  for await (const c of req) {
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function statusOf(e) {
  return e?.status ?? e?.response?.status ?? e?.cause?.status;
}

async function route(req, res) {
  const url = new URL(req.url, RP);
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /login': {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      pending.set(state, { verifier, nonce });
      const to = client.buildAuthorizationUrl(config, {
        redirect_uri: `${RP}/cb`,
        scope: 'openid profile email',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return redirect(res, to.href);
    }
    case 'GET /cb': {
      const state = url.searchParams.get('state');
      const checks = pending.get(state);
      if (!checks) {
        return page(res, 400, 'Unknown login', '<p id="error">no login under way with that state</p>');
      }
      pending.delete(state);
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: checks.verifier,
          expectedState: state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        });
      } catch (e) {
        console.error('  rp: code grant failed:', e);
        return page(res, 502, 'Sign-in failed', `<p id="error">${escape(e.message)}</p>`);
      }
      const claims = tokens.claims();
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      const id = randomBytes(24).toString('base64url');
      sessions.set(id, {
        sub: claims.sub,
        sid: claims.sid,
        idToken: tokens.id_token,
        accessToken: tokens.access_token,
        claims,
        userinfo,
      });
      return redirect(res, `${RP}/me`, {
        'set-cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`,
      });
    }
    case 'GET /me': {
      const id = cookieOf(req, SESSION_COOKIE);
      const s = id && sessions.get(id);
      if (!s) {
        return signedOut(res, 'no session');
      }
      if (url.searchParams.get('refresh') === '1') {
        try {
          s.userinfo = await client.fetchUserInfo(config, s.accessToken, s.sub);
        } catch (e) {
          const status = statusOf(e);
          sessions.delete(id);
          return page(
            res,
            200,
            'Vendor app',
            `<p id="status">signed out</p><p id="userinfo-status">${escape(status)}</p>` +
              `<p id="why">${escape(e.message)}</p>`,
          );
        }
      }
      return page(
        res,
        200,
        'Vendor app',
        `<p id="status">signed in</p><p id="name">${escape(s.userinfo.name)}</p>` +
          `<p id="tenant-name">${escape(s.userinfo.tenant_name)}</p>` +
          `<p id="sub">${escape(s.sub)}</p><p id="sid">${escape(s.sid)}</p>`,
      );
    }
    case 'GET /logout': {
      // The RP's session is left to the back-channel logout that the provider sends: /me after
      // this shows "signed out" only if that arrived and verified.
      const s = sessions.get(cookieOf(req, SESSION_COOKIE));
      if (!s) {
        return signedOut(res, 'no session to log out');
      }
      const to = client.buildEndSessionUrl(config, {
        id_token_hint: s.idToken,
        post_logout_redirect_uri: `${RP}/bye`,
      });
      return redirect(res, to.href);
    }
    case 'GET /bye':
      return page(res, 200, 'Goodbye', '<p id="bye">You have signed out of the vendor app.</p>');
    case 'POST /backchannel': {
      const form = new URLSearchParams(await readBody(req));
      try {
        const token = form.get('logout_token');
        check(token, 'no logout_token in the form');
        const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
          issuer: metadata.issuer,
          audience: CLIENT_ID,
          algorithms: metadata.id_token_signing_alg_values_supported,
        });
        check(typeof payload.events?.[BACKCHANNEL_EVENT] === 'object', 'no back-channel logout event');
        check(payload.nonce === undefined, 'a logout token must not carry a nonce');
        check(payload.sid || payload.sub, 'neither sid nor sub');
        check(typeof payload.iat === 'number', 'no iat');
        check(typeof payload.jti === 'string' && payload.jti, 'no jti');
        check(!seenJti.has(payload.jti), `logout token ${payload.jti} replayed`);
        seenJti.add(payload.jti);
        let ended = 0;
        for (const [id, s] of sessions) {
          if ((payload.sid && s.sid === payload.sid) || (!payload.sid && s.sub === payload.sub)) {
            check(!payload.sub || s.sub === payload.sub, `sid ${payload.sid} is not ${payload.sub}'s`);
            sessions.delete(id);
            ended += 1;
          }
        }
        logouts.push({ ...payload, typ: protectedHeader.typ, ended });
        res.writeHead(200, { 'cache-control': 'no-store' });
        return res.end();
      } catch (e) {
        badLogouts.push(e.message);
        console.error('  rp: bad logout token:', e.message);
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'invalid_request', error_description: e.message }));
      }
    }
    default:
      return page(res, 404, 'Not found', '');
  }
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => {
    console.error('  rp: error:', e);
    if (!res.headersSent) {
      page(res, 500, 'RP error', `<p id="error">${escape(e.message)}</p>`);
    }
  });
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(RP_PORT, '127.0.0.1', resolve);
});

// ---------------------------------------------------------------------------------------------
// The buyer: headless Chromium.

const browser = await launchChromium();

const text = async (p, selector) => (await p.locator(selector).textContent({ timeout: 5_000 }))?.trim();
const path = (p) => {
  const u = new URL(p.url());
  return `${u.origin}${u.pathname}`;
};

/** The URLs a navigation went through, its redirects first. */
function hops(response) {
  const urls = [];
  for (let r = response?.request(); r; r = r.redirectedFrom()) {
    urls.unshift(r.url());
  }
  return urls;
}

async function waitFor(what, cond, ms = 5_000) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** From RP/login through the unified login page as `user`; the page after the login click. */
async function signIn(p, user) {
  await p.goto(`${RP}/login`);
  check(
    p.url().includes('/unified-login/portal-login?ind=UNOP&appId='),
    `RP/login did not land on the unified login page but on ${p.url()}`,
  );
  const tag = await p.locator('#tenant').evaluate((e) => e.tagName);
  if (tag === 'SELECT') {
    await p.selectOption('#tenant', TENANT);
  } else {
    await p.fill('#tenant', TENANT);
  }
  await p.fill('#userName', user);
  const [response] = await Promise.all([p.waitForNavigation(), p.click('#login')]);
  const through = hops(response);
  check(
    through.some((u) => u.startsWith(`${ISSUER}/sso/callback?code=`)),
    `${user}: the login did not come back through the provider's /sso/callback: ${through.join(' -> ')}`,
  );
  return response;
}

async function main() {
  console.log(
    `openid-client ${versionOf('openid-client')}, jose ${versionOf('jose')}, ` +
      `playwright-core ${versionOf('playwright-core')}, Chromium ${browser.version()}, node ${process.version}`,
  );
  check(metadata.issuer === ISSUER, `discovery's issuer ${metadata.issuer} is not ${ISSUER}`);
  ok(`discovery: ${metadata.issuer}, end_session ${metadata.end_session_endpoint}`);

  // a. Sign in.
  const a = await browser.newContext();
  const pa = await a.newPage();
  await signIn(pa, USER_OK);
  check(path(pa) === `${RP}/me`, `after the login click: ${pa.url()}, not ${RP}/me (${await pa.textContent('body')})`);
  check((await text(pa, '#status')) === 'signed in', `RP/me: ${await pa.textContent('body')}`);
  const name = await text(pa, '#name');
  check(name === NAME_OK, `RP/me shows name ${JSON.stringify(name)}, expected ${JSON.stringify(NAME_OK)}`);
  const tenantName = await text(pa, '#tenant-name');
  check(
    tenantName === TENANT_NAME,
    `RP/me shows tenant_name ${JSON.stringify(tenantName)}, expected ${JSON.stringify(TENANT_NAME)}`,
  );
  const sidA = await text(pa, '#sid');
  ok(`a. ${USER_OK} signed in through the unified login: RP/me shows ${name} of ${tenantName}`);

  // b. Log out: the provider's end-session, the auth centre's logout, back to RP/bye.
  const out = hops(await pa.goto(`${RP}/logout`));
  check(path(pa) === `${RP}/bye`, `RP/logout ended on ${pa.url()}, not ${RP}/bye`);
  check(
    out.some((u) => u.startsWith(`${metadata.end_session_endpoint}?`)) &&
      out.some((u) => new URL(u).pathname === '/api/v1/logout'),
    `RP/logout did not pass the provider's end-session and the auth centre's logout: ${out.join(' -> ')}`,
  );
  ok(`b. RP/logout went through the provider's end-session and the auth centre's logout to ${pa.url()}`);
  await waitFor('the back-channel logout of session a', () => logouts.some((l) => l.sid === sidA));
  const la = logouts.find((l) => l.sid === sidA);
  check(la.ended === 1, `the logout token for ${sidA} ended ${la.ended} RP sessions, not 1`);
  ok(`b. back-channel logout verified (iss, aud, ES256 via JWKS, events; typ ${la.typ}) for sid ${sidA}`);
  await pa.goto(`${RP}/me`);
  check((await text(pa, '#status')) === 'signed out', `RP/me after logout: ${await pa.textContent('body')}`);
  ok('b. RP/me shows signed out');
  await pa.goto(`${RP}/login`);
  check(
    pa.url().includes('/unified-login/portal-login?'),
    `RP/login after the logout did not ask for a login again but went to ${pa.url()}`,
  );
  ok("b. the provider's session is gone: RP/login asks for the unified login again");
  await a.close();

  // c. A user the auth centre knows but authSync did not authorize.
  const c = await browser.newContext();
  const pc = await c.newPage();
  const before = sessions.size;
  const refused = await signIn(pc, USER_REFUSED);
  const status = refused?.status();
  const body = await pc.textContent('body');
  check(status === 403, `${USER_REFUSED}: status ${status} at ${pc.url()}, expected the provider's 403`);
  check(pc.url().startsWith(`${ISSUER}/`), `${USER_REFUSED}: ended on ${pc.url()}, not the provider`);
  check(body.includes('not authorized'), `${USER_REFUSED}: the 403 page says ${JSON.stringify(body)}`);
  check(sessions.size === before, `${USER_REFUSED}: the RP has a session`);
  const providerSession = (await c.cookies(ISSUER)).find((k) => k.name === 'kg_sso' && k.value);
  check(!providerSession, `${USER_REFUSED}: the provider set a session cookie on its refusal`);
  await pc.goto(`${RP}/me`);
  check((await text(pc, '#status')) === 'signed out', `${USER_REFUSED}: RP/me: ${await pc.textContent('body')}`);
  ok(`c. ${USER_REFUSED} refused: the provider's 403 "not authorized", no RP session`);
  await c.close();

  // d. Revoked mid-session.
  const d = await browser.newContext();
  const pd = await d.newPage();
  await signIn(pd, USER_REVOKE);
  check(path(pd) === `${RP}/me`, `${USER_REVOKE}: after the login click: ${pd.url()}`);
  check((await text(pd, '#status')) === 'signed in', `${USER_REVOKE}: RP/me: ${await pd.textContent('body')}`);
  const sidD = await text(pd, '#sid');
  ok(`d. ${USER_REVOKE} signed in (sid ${sidD})`);
  const revoke = await fetch(`${CONTROL_URL}/revoke`, { method: 'POST' });
  check(revoke.ok, `POST ${CONTROL_URL}/revoke: ${revoke.status} ${await revoke.text()}`);
  ok(`d. authSync revoked ${USER_REVOKE}`);
  await pd.goto(`${RP}/me?refresh=1`);
  check(
    (await text(pd, '#status')) === 'signed out',
    `${USER_REVOKE}: RP/me?refresh=1 after the revoke: ${await pd.textContent('body')}`,
  );
  // The worker ends the session when it delivers the revoke, and its back-channel logout may reach
  // the app before this page load; otherwise the app's userinfo call is refused (401).
  if ((await pd.locator('#userinfo-status').count()) > 0) {
    const uiStatus = await text(pd, '#userinfo-status');
    check(uiStatus === '401', `${USER_REVOKE}: userinfo answered ${uiStatus}, expected 401`);
    ok('d. userinfo refused the revoked user (401): RP/me shows signed out');
  } else {
    ok('d. the back-channel logout had already signed the revoked user out: RP/me shows signed out');
  }
  await waitFor('the back-channel logout of session d', () => logouts.some((l) => l.sid === sidD));
  ok(`d. back-channel logout verified for sid ${sidD}`);
  await d.close();

  check(badLogouts.length === 0, `back-channel requests that failed verification: ${badLogouts}`);
  check(logouts.length === 2, `${logouts.length} back-channel logouts, expected 2: ${JSON.stringify(logouts)}`);
  ok('exactly two back-channel logouts, both verified');
}

let code = 0;
try {
  await main();
  console.log(`sso.mjs: all ${stepsDone()} steps passed`);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  if (e.stack) {
    console.error(e.stack);
  }
  code = 1;
} finally {
  await browser.close().catch(() => {});
  server.closeAllConnections();
  server.close();
}
process.exit(code);
