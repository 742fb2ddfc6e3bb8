"""psycopg 3 in its default mode (autocommit off), with its transaction
blocks (nested ones are savepoints) and the extended protocol, against
kvnode.

Usage: python3 psycopg3_txn.py URL. Prints "ok" and exits 0, or raises.
The table `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty."""
import sys

import psycopg
from psycopg import errors

url = sys.argv[1]
with psycopg.connect(url) as conn:
    assert not conn.autocommit
    conn.execute("INSERT INTO accounts VALUES (%s, %s), (%s, %s)", (1, 100, 2, 100))
    conn.commit()

    # Nested transaction blocks: the inner one is a savepoint.
    with conn.transaction():
        conn.execute("UPDATE accounts SET balance = balance - 30 WHERE id = %s", (1,))
        try:
            with conn.transaction():
                conn.execute("UPDATE accounts SET balance = balance + 30 WHERE id = %s", (2,))
                conn.execute("INSERT INTO accounts VALUES (%s, %s)", (1, 0))  # duplicate
        except errors.UniqueViolation:
            pass
        conn.execute("UPDATE accounts SET balance = balance + 30 WHERE id = %s", (2,))
    rows = conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()
    assert rows == [(1, 70), (2, 130)], rows
    conn.commit()

    # Rollback of an outer block.
    try:
        with conn.transaction():
            conn.execute("DELETE FROM accounts WHERE id = %s", (1,))
            raise RuntimeError("application error")
    except RuntimeError:
        pass
    assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 2
    conn.commit()

    # A conflict between two connections is SerializationFailure.
    with psycopg.connect(url) as other:
        conn.execute("SELECT balance FROM accounts WHERE id = 1")
        other.execute("SELECT balance FROM accounts WHERE id = 1")
        conn.execute("UPDATE accounts SET balance = 1 WHERE id = 1")
        other.execute("UPDATE accounts SET balance = 2 WHERE id = 1")
        conn.commit()
        try:
            other.commit()
            raise AssertionError("both conflicting transactions committed")
        except errors.SerializationFailure:
            pass
    assert conn.execute("SELECT balance FROM accounts WHERE id = 1").fetchone()[0] == 1
    conn.commit()
print("ok")
