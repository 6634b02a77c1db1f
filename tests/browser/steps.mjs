// What every browser script of tests/browser shares: its settings from the environment (the Rust
// test that runs it sets them all), and its steps, each asserted and printed as one `ok N - …`
// line that the Rust test counts.

import { basename } from 'node:path';

let done = 0;

// Ends the script saying why.
export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// A setting the Rust test passes; missing, the script fails at once.
export function env(name) {
  const v = process.env[name];
  if (!v) {
    fail(`environment variable ${name} is not set (the Rust test that runs ${basename(process.argv[1])} sets them all)`);
  }
  return v;
}

// One step passed.
export function ok(line) {
  done += 1;
  console.log(`ok ${done} - ${line}`);
}

// An assertion of the current step.
export function check(cond, message) {
  if (!cond) {
    throw new Error(message);
  }
}

// How many steps have passed.
export function stepsDone() {
  return done;
}
