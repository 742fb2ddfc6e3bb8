// node-postgres (the npm package pg) against kvnode: BEGIN/COMMIT/ROLLBACK,
// a savepoint, parameterized statements (the extended protocol) inside a
// transaction, and a serialization failure between two clients.
//
// Usage: NODE_PATH=DIR/node_modules node node_postgres_txn.js URL
// Prints "ok" and exits 0, or exits 1 with the error. The table
// `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty.
'use strict';
const assert = require('assert');
const { Client } = require('pg');

async function balance(c, id) {
  const r = await c.query('SELECT balance FROM accounts WHERE id = $1', [id]);
  return Number(r.rows[0].balance); // INT is INT8, which pg returns as a string
}

async function main() {
  const url = process.argv[2];
  const a = new Client({ connectionString: url });
  const b = new Client({ connectionString: url });
  await a.connect();
  await b.connect();
  try {
    await a.query('BEGIN');
    await a.query('INSERT INTO accounts VALUES ($1, $2), ($3, $4)', [1, 100, 2, 100]);
    await a.query('COMMIT');

    await a.query('BEGIN');
    await a.query('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [40, 1]);
    assert.strictEqual(await balance(a, 1), 60, 'reads its own write');
    assert.strictEqual(await balance(b, 1), 100, 'another client sees the committed value');
    await a.query('ROLLBACK');
    assert.strictEqual(await balance(a, 1), 100, 'rollback discards');

    await a.query('BEGIN');
    await a.query('SAVEPOINT s');
    await a.query('UPDATE accounts SET balance = 0 WHERE id = 2');
    await a.query('ROLLBACK TO SAVEPOINT s');
    await a.query('UPDATE accounts SET balance = 101 WHERE id = 2');
    await a.query('COMMIT');
    assert.strictEqual(await balance(b, 2), 101, 'savepoint');

    await a.query('BEGIN');
    await b.query('BEGIN');
    await balance(a, 1);
    await balance(b, 1);
    await a.query('UPDATE accounts SET balance = 1 WHERE id = 1');
    await b.query('UPDATE accounts SET balance = 2 WHERE id = 1');
    await a.query('COMMIT');
    let failed = null;
    try {
      await b.query('COMMIT');
    } catch (e) {
      failed = e;
    }
    assert.ok(failed, 'both conflicting transactions committed');
    assert.strictEqual(failed.code, '40001', String(failed));
    assert.strictEqual(await balance(b, 1), 1, 'the first commit won');
  } finally {
    await a.end();
    await b.end();
  }
  console.log('ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
