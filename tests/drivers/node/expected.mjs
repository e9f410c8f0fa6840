// Scenario tests that wait for a gateway fix, with the reason. Such a test
// must fail: if it starts passing, it fails the run until its entry is
// removed, so this list stays honest (the same rule as the pymongo suite's
// expected_failures.txt).

import { test } from 'node:test';

// Empty today: every scenario passes.
export const EXPECTED_FAILURES = {};

/** `test(name, fn)`, inverted for the names listed in EXPECTED_FAILURES. */
export function scenarioTest(name, fn) {
  const reason = EXPECTED_FAILURES[name];
  if (reason === undefined) {
    return test(name, fn);
  }
  return test(`${name} [expected failure: ${reason}]`, async (t) => {
    let failure;
    try {
      await fn(t);
    } catch (error) {
      failure = error;
    }
    if (failure === undefined) {
      throw new Error(`now passes: remove it from EXPECTED_FAILURES in expected.mjs`);
    }
    t.diagnostic(`failed as expected: ${String(failure.message).split('\n').slice(-2).join(' ')}`);
  });
}
