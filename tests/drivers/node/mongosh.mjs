// `mongosh --eval` against the gateway: the shell connects (its connect-time
// commands included), inserts, queries, updates and deletes. The script
// throws on the first wrong answer, so mongosh exits non-zero.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Devnet } from './devnet.mjs';
import { scenarioTest } from './expected.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MONGOSH = path.join(HERE, 'node_modules', '.bin', 'mongosh');
const execFileAsync = promisify(execFile);

// Shell JavaScript shared by the scripts below.
const PRELUDE = `
const people = db.getSiblingDB('mongosh_scenario').people;
function check(condition, what) { if (!condition) { throw new Error('mongosh scenario: ' + what); } }
`;

// Counts go through Number(): the gateway sends them as int64 (a Long in
// mongosh); the expected failure below checks the type itself.
const SCENARIO = `${PRELUDE}
people.drop();
const one = people.insertOne({ name: 'ada', age: 36 });
check(one.acknowledged && one.insertedId, 'insertOne acknowledged with an id');
check(people.insertMany([{ _id: 1, name: 'alan', age: 41 }, { _id: 2, name: 'grace', age: 85 }]).insertedIds[1] === 2, 'insertMany ids');

const older = people.find({ age: { $gt: 40 } }, { _id: 0, name: 1 }).sort({ age: -1 }).toArray();
check(JSON.stringify(older) === JSON.stringify([{ name: 'grace' }, { name: 'alan' }]), 'find sort projection: ' + JSON.stringify(older));
check(people.findOne({ name: 'ada' }).age === 36, 'findOne');

check(Number(people.updateOne({ name: 'ada' }, { $inc: { age: 1 } }).modifiedCount) === 1, 'updateOne');
check(people.findOne({ name: 'ada' }).age === 37, 'updated value');
check(Number(people.updateMany({}, { $set: { seen: true } }).modifiedCount) === 3, 'updateMany');
check(people.find({ seen: true }).toArray().length === 3, 'updateMany applied');

check(Number(people.deleteOne({ _id: 1 }).deletedCount) === 1, 'deleteOne');
check(Number(people.deleteMany({ seen: true }).deletedCount) === 2, 'deleteMany');
check(people.find().toArray().length === 0, 'all deleted');
check(people.drop() === true, 'drop');
print('MONGOSH-SCENARIO-OK ' + db.version());
`;

const INT32_COUNTS = `${PRELUDE}
people.drop();
people.insertOne({ _id: 'x', n: 1 });
check(people.updateOne({ _id: 'x' }, { $inc: { n: 1 } }).modifiedCount === 1, 'modifiedCount is the number 1');
check(people.deleteOne({ _id: 'x' }).deletedCount === 1, 'deletedCount is the number 1');
print('MONGOSH-COUNTS-OK');
`;

let devnet;

before(async () => {
  devnet = await Devnet.start();
});

after(async () => {
  await devnet?.stop();
});

async function mongosh(script) {
  const { stdout } = await execFileAsync(MONGOSH, [devnet.uri, '--quiet', '--norc', '--eval', script], {
    timeout: 120_000,
    env: { ...process.env, MONGOSH_NO_UPDATE_CHECK: '1' },
  });
  return stdout;
}

scenarioTest('mongosh --eval: connect, insert, query, update, delete', async () => {
  assert.match(await mongosh(SCENARIO), /MONGOSH-SCENARIO-OK 7\.0\.0/);
});

scenarioTest('mongosh: write results count in int32, as mongod sends them', async () => {
  assert.match(await mongosh(INT32_COUNTS), /MONGOSH-COUNTS-OK/);
});
