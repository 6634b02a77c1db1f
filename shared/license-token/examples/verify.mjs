// Verifies a KGL1 license token offline with Node's standard library alone.
// Usage: node verify.mjs <jwks.json> <token | @file> [now-unix-seconds]
// Exit: 0 valid and usable, 1 valid but not usable, 2 does not verify.
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [jwksPath, arg, nowArg] = process.argv.slice(2);
const fail = (why) => { console.error(`license token rejected: ${why}`); process.exit(2); };
process.on('uncaughtException', (e) => fail(e.message)); // unreadable files, bad JSON or key: 2, never 1
if (!arg) fail('usage: node verify.mjs <jwks.json> <token | @file> [now-unix-seconds]');
const token = (arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg).trim();
const now = nowArg ? Number(nowArg) : Math.floor(Date.now() / 1000);
const b64url = (s) => { const b = Buffer.from(s, 'base64url'); if (b.toString('base64url') !== s) fail('bad base64url'); return b; };

const parts = token.split('.');
if (parts.length !== 3 || parts[0] !== 'KGL1') fail('malformed');
let claims; try { claims = JSON.parse(b64url(parts[1]).toString('utf8')); } catch { fail('malformed claims'); }
const jwk = JSON.parse(readFileSync(jwksPath, 'utf8')).keys
  .find((k) => k.kid === claims.kid && k.kty === 'OKP' && k.crv === 'Ed25519');
if (!jwk) fail('unknown key');
const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
const sig = b64url(parts[2]);
if (sig.length !== 64 || !verify(null, Buffer.from(`KGL1.${parts[1]}`, 'ascii'), key, sig)) fail('bad signature');
if (claims.v !== 1) fail('unsupported version');
if (!(claims.offlineUntil >= now)) fail('offline window over; check online');
console.log(JSON.stringify(claims, null, 2));
process.exit(claims.status === 'ACTIVE' && (claims.exp == null || claims.exp > now) ? 0 : 1);
