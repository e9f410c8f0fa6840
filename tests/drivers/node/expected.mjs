// Scenario tests that wait for a gateway fix, with the reason. Such a test
// must fail: if it starts passing, it fails the run until its entry is
// removed, so this list stays honest (the same rule as the pymongo suite's
// expected_failures.txt).

import { test } from 'node:test';

export const EXPECTED_FAILURES = {
  'mongosh: write results count in int32, as mongod sends them':
    'the gateway answers insert/update/delete counts (n, nModified) as int64; mongod sends int32, '
    + 'so mongosh shows modifiedCount as Long(\'1\') and `=== 1` is false',
};

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
