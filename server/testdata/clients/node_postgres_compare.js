// node-postgres (the npm package pg), unmodified, as an application uses it:
// DDL, parameterized statements (the extended protocol), the values of each
// type as pg parses them into JavaScript, the result's fields (name and type
// OID), a named prepared statement, a transaction, errors with their
// SQLSTATE, and the catalog queries an app or a migration tool sends. It
// prints one line per step; server/node_postgres_test.go runs it against a
// real PostgreSQL and against kvnode and expects the same lines from both.
//
// Usage: NODE_PATH=DIR/node_modules node node_postgres_compare.js URL
// The database must not hold a table named np_items.
'use strict';
const { Client } = require('pg');

// show prints a value the way it reached the application: its JavaScript
// type and its JSON form (a Buffer as hex, a Date as its ISO string).
function show(v) {
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return 'Buffer ' + v.toString('hex');
  if (v instanceof Date) return 'Date ' + v.toISOString();
  if (Array.isArray(v)) return 'Array ' + JSON.stringify(v);
  return typeof v + ' ' + JSON.stringify(v);
}

function fields(r) {
  return r.fields.map((f) => f.name + ':' + f.dataTypeID).join(' ');
}

async function main() {
  const c = new Client({ connectionString: process.argv[2] });
  await c.connect();
  const step = (name, line) => console.log(name + ': ' + line);
  try {
    let r = await c.query(`CREATE TABLE np_items (
      id INT8 PRIMARY KEY,
      qty INT4 NOT NULL,
      small INT2,
      price NUMERIC(10, 2),
      ratio FLOAT8,
      name TEXT NOT NULL,
      code VARCHAR(8),
      ok BOOL,
      at TIMESTAMPTZ,
      day DATE,
      raw BYTEA,
      tags TEXT[],
      nums INT4[],
      doc JSONB,
      uid UUID
    )`);
    step('create', r.command);
    r = await c.query(
      'INSERT INTO np_items VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15), ' +
        '(2, 0, NULL, NULL, NULL, $16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)',
      [1, 42, -7, '12.50', 0.25, 'widget', 'W-1', true, new Date('2024-03-01T12:34:56.789Z'), '2024-02-29',
        Buffer.from([0, 1, 254, 255]), ['a', 'b c', 'd"e'], [1, -2, 3], { k: [1, 'two', null], n: { x: true } },
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'nothing']);
    step('insert', r.command + ' ' + r.rowCount);

    r = await c.query('SELECT * FROM np_items ORDER BY id');
    step('fields', fields(r));
    for (const row of r.rows) {
      for (const [k, v] of Object.entries(row)) step('row ' + row.id + ' ' + k, show(v));
    }

    r = await c.query({ text: 'SELECT id, name FROM np_items WHERE qty > $1 ORDER BY id', values: [10], rowMode: 'array' });
    step('rowMode array', JSON.stringify(r.rows));
    r = await c.query({ name: 'by_id', text: 'SELECT name, price FROM np_items WHERE id = $1', values: [1] });
    step('prepared 1', JSON.stringify(r.rows));
    r = await c.query({ name: 'by_id', values: [2] });
    step('prepared 2', JSON.stringify(r.rows));
    r = await c.query('UPDATE np_items SET qty = qty + $1 WHERE id = $2', [1, 1]);
    step('update', r.command + ' ' + r.rowCount);
    r = await c.query('SELECT $1::int8 + 1 AS big, $2::text AS t, $3::bool AS b, 1.5::float8 AS f, NULL AS n', ['9007199254740993', 'x', false]);
    step('expressions', fields(r) + ' ' + Object.values(r.rows[0]).map(show).join(', '));

    await c.query('BEGIN');
    await c.query('INSERT INTO np_items (id, qty, name) VALUES (3, 3, $1)', ['rolled back']);
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    await c.query('INSERT INTO np_items (id, qty, name) VALUES (4, 4, $1)', ['committed']);
    await c.query('COMMIT');
    r = await c.query('SELECT id FROM np_items ORDER BY id');
    step('transactions', JSON.stringify(r.rows.map((x) => x.id)));

    for (const [what, sql, params] of [
      ['duplicate key', 'INSERT INTO np_items (id, qty, name) VALUES ($1, 1, $2)', [1, 'dup']],
      ['not null', 'INSERT INTO np_items (id, qty) VALUES (5, 1)', []],
      ['undefined table', 'SELECT * FROM np_missing', []],
      ['undefined column', 'SELECT nope FROM np_items', []],
      ['division by zero', 'SELECT 1 / (qty - qty) FROM np_items', []],
      ['bad integer', 'SELECT $1::int4', ['x']],
    ]) {
      try {
        await c.query(sql, params);
        step('error ' + what, 'none');
      } catch (e) {
        step('error ' + what, e.code);
      }
    }

    // What an application or a migration tool asks the catalog.
    r = await c.query(`SELECT column_name, data_type, is_nullable, ordinal_position
      FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, ['np_items']);
    for (const row of r.rows) step('column', [row.ordinal_position, row.column_name, row.data_type, row.is_nullable].join(' '));
    r = await c.query(`SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relname LIKE 'np\\_%' ORDER BY 1`);
    step('pg_class', JSON.stringify(r.rows));
    r = await c.query(`SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
      FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`, ['np_items']);
    step('format_type', r.rows.map((x) => x.attname + ' ' + x.type).join(', '));
    r = await c.query(`SELECT kcu.column_name FROM information_schema.table_constraints tc
      JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name
      WHERE tc.table_name = $1 AND tc.constraint_type = 'PRIMARY KEY'`, ['np_items']);
    step('primary key', JSON.stringify(r.rows));
    try {
      r = await c.query("SELECT to_regclass('np_items') IS NOT NULL AS present, to_regclass('np_missing') IS NULL AS absent");
      step('to_regclass', JSON.stringify(r.rows));
    } catch (e) {
      step('to_regclass', e.code);
    }

    r = await c.query('DROP TABLE np_items');
    step('drop', r.command);
  } finally {
    await c.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
