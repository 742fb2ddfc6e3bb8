"""psycopg2 in its default mode (autocommit off: the driver sends BEGIN
before the first statement of each transaction) against kvnode.

Usage: python3 psycopg2_txn.py URL. Prints "ok" and exits 0, or raises.
The table `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty."""
import sys

import psycopg2
import psycopg2.errors

url = sys.argv[1]
conn = psycopg2.connect(url)
assert not conn.autocommit
cur = conn.cursor()

cur.execute("INSERT INTO accounts VALUES (1, 100), (2, 100)")
conn.commit()

# Rollback discards; reads see the transaction's own writes.
cur.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1")
cur.execute("SELECT balance FROM accounts WHERE id = 1")
assert cur.fetchone()[0] == 90
conn.rollback()
cur.execute("SELECT balance FROM accounts WHERE id = 1")
assert cur.fetchone()[0] == 100, "rollback did not discard"
conn.commit()

# An error aborts the transaction until rollback.
try:
    cur.execute("INSERT INTO accounts VALUES (1, 5)")
    raise AssertionError("duplicate key accepted")
except psycopg2.errors.UniqueViolation:
    pass
try:
    cur.execute("SELECT 1")
    raise AssertionError("statement accepted in a failed transaction")
except psycopg2.errors.InFailedSqlTransaction:
    pass
conn.rollback()

# Savepoints.
cur.execute("SAVEPOINT a")
cur.execute("UPDATE accounts SET balance = 0 WHERE id = 2")
cur.execute("ROLLBACK TO SAVEPOINT a")
cur.execute("RELEASE SAVEPOINT a")
conn.commit()
cur.execute("SELECT balance FROM accounts WHERE id = 2")
assert cur.fetchone()[0] == 100
conn.commit()

# A conflict is a SerializationFailure (40001) a retry loop can catch.
other = psycopg2.connect(url)
ocur = other.cursor()
cur.execute("SELECT balance FROM accounts WHERE id = 1")
ocur.execute("SELECT balance FROM accounts WHERE id = 1")
cur.execute("UPDATE accounts SET balance = 50 WHERE id = 1")
ocur.execute("UPDATE accounts SET balance = 60 WHERE id = 1")
conn.commit()
try:
    other.commit()
    raise AssertionError("both conflicting transactions committed")
except psycopg2.errors.SerializationFailure as e:
    assert "restart transaction" in str(e), str(e)

for attempt in range(10):
    try:
        ocur.execute("SELECT balance FROM accounts WHERE id = 1")
        bal = ocur.fetchone()[0]
        ocur.execute("UPDATE accounts SET balance = %s WHERE id = 1", (bal + 1,))
        other.commit()
        break
    except psycopg2.errors.SerializationFailure:
        other.rollback()
else:
    raise AssertionError("the retry loop never committed")

# The `with conn:` block commits on success and rolls back on error.
with conn:
    with conn.cursor() as c2:
        c2.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2")
try:
    with conn:
        with conn.cursor() as c2:
            c2.execute("UPDATE accounts SET balance = 0 WHERE id = 2")
            raise RuntimeError("application error")
except RuntimeError:
    pass
cur.execute("SELECT id, balance FROM accounts ORDER BY id")
rows = cur.fetchall()
assert rows == [(1, 51), (2, 101)], rows
conn.commit()
print("ok")
