// The Node.js `mongodb` driver against the gateway: connect, insert, query,
// update, delete, as an application would.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { MongoClient, MongoServerError, ObjectId } from 'mongodb';

import { Devnet } from './devnet.mjs';

let devnet;
let client;
let people;

before(async () => {
  devnet = await Devnet.start();
  client = new MongoClient(devnet.uri, { serverSelectionTimeoutMS: 10_000, appName: 'fluence-node-scenario' });
  await client.connect();
  people = client.db('node_scenario').collection('people');
});

after(async () => {
  await client?.close();
  await devnet?.stop();
});

test('connect: the handshake and ping answer', async () => {
  const pong = await client.db('admin').command({ ping: 1 });
  assert.equal(pong.ok, 1);
  const hello = await client.db('admin').command({ hello: 1 });
  assert.equal(hello.isWritablePrimary, true);
  assert.ok(hello.maxWireVersion >= 17);
});

test('insert: insertOne and insertMany', async () => {
  const one = await people.insertOne({ name: 'ada', age: 36, tags: ['math'] });
  assert.ok(one.insertedId instanceof ObjectId);
  // The driver appends the `_id` it generates; mongod stores it first.
  const stored = await people.findOne({ _id: one.insertedId });
  assert.deepEqual(Object.keys(stored), ['_id', 'name', 'age', 'tags']);
  const many = await people.insertMany([
    { _id: 'alan', name: 'alan', age: 41, address: { city: 'Wilmslow' } },
    { _id: 'grace', name: 'grace', age: 85 },
    { _id: 'edsger', name: 'edsger', age: 72 },
  ]);
  assert.equal(many.insertedCount, 3);
  await assert.rejects(people.insertOne({ _id: 'alan' }), (error) => {
    assert.ok(error instanceof MongoServerError);
    assert.equal(error.code, 11000);
    return true;
  });
});

test('query: filters, sort, projection, skip and limit, cursors', async () => {
  const older = await people
    .find({ age: { $gt: 40 } }, { projection: { _id: 0, name: 1 } })
    .sort({ age: -1 })
    .toArray();
  assert.deepEqual(older, [{ name: 'grace' }, { name: 'edsger' }, { name: 'alan' }]);
  assert.equal((await people.findOne({ 'address.city': 'Wilmslow' }))._id, 'alan');
  const second = await people.find({}).sort({ age: 1 }).skip(1).limit(1).toArray();
  assert.equal(second[0].name, 'alan');
  const batched = await people.find({}, { batchSize: 1 }).toArray();
  assert.equal(batched.length, 4);
});

test('update: updateOne, updateMany, replaceOne, upsert', async () => {
  const one = await people.updateOne({ name: 'ada' }, { $inc: { age: 1 }, $push: { tags: 'poetry' } });
  assert.equal(one.modifiedCount, 1);
  assert.deepEqual((await people.findOne({ name: 'ada' }, { projection: { _id: 0 } })),
    { name: 'ada', age: 37, tags: ['math', 'poetry'] });
  const many = await people.updateMany({ age: { $gt: 70 } }, { $set: { retired: true } });
  assert.equal(many.modifiedCount, 2);
  const replaced = await people.replaceOne({ _id: 'edsger' }, { name: 'edsger', age: 72, field: 'cs' });
  assert.equal(replaced.modifiedCount, 1);
  assert.equal((await people.findOne({ _id: 'edsger' })).retired, undefined);
  const upsert = await people.updateOne({ _id: 'barbara' }, { $set: { age: 84 } }, { upsert: true });
  assert.equal(upsert.upsertedId, 'barbara');
  assert.equal((await people.find({ retired: true }).toArray()).length, 1);
});

test('delete: deleteOne, deleteMany, then the collection is dropped', async () => {
  assert.equal((await people.deleteOne({ _id: 'barbara' })).deletedCount, 1);
  assert.equal((await people.deleteMany({ age: { $gte: 40 } })).deletedCount, 3);
  const left = await people.find({}, { projection: { _id: 0, name: 1 } }).toArray();
  assert.deepEqual(left, [{ name: 'ada' }]);
  assert.equal(await people.estimatedDocumentCount(), 1);
  assert.equal(await people.drop(), true);
  const names = (await client.db('node_scenario').listCollections().toArray()).map((c) => c.name);
  assert.ok(!names.includes('people'));
});
