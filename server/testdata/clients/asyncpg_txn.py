"""asyncpg (binary protocol, its own transaction blocks) against kvnode:
commit, rollback on an exception, a nested block as a savepoint, and a
serialization failure.

Usage: python3 asyncpg_txn.py URL. Prints "ok" and exits 0, or raises.
The table `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty."""
import asyncio
import sys

import asyncpg


async def main(url):
    a = await asyncpg.connect(url)
    b = await asyncpg.connect(url)
    try:
        async with a.transaction():
            await a.execute("INSERT INTO accounts VALUES ($1, $2), ($3, $4)", 1, 100, 2, 100)
        try:
            async with a.transaction():
                await a.execute("UPDATE accounts SET balance = 0 WHERE id = $1", 1)
                raise RuntimeError("application error")
        except RuntimeError:
            pass
        assert await a.fetchval("SELECT balance FROM accounts WHERE id = $1", 1) == 100
        async with a.transaction():
            await a.execute("UPDATE accounts SET balance = balance - 10 WHERE id = $1", 1)
            try:
                async with a.transaction():  # a savepoint
                    await a.execute("INSERT INTO accounts VALUES ($1, $2)", 2, 0)
            except asyncpg.UniqueViolationError:
                pass
            await a.execute("UPDATE accounts SET balance = balance + 10 WHERE id = $1", 2)
        rows = await a.fetch("SELECT id, balance FROM accounts ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, 90), (2, 110)], rows

        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await a.fetchval("SELECT balance FROM accounts WHERE id = 1")
        await b.fetchval("SELECT balance FROM accounts WHERE id = 1")
        await a.execute("UPDATE accounts SET balance = 1 WHERE id = 1")
        await b.execute("UPDATE accounts SET balance = 2 WHERE id = 1")
        await ta.commit()
        try:
            await tb.commit()
            raise AssertionError("both conflicting transactions committed")
        except asyncpg.SerializationError:
            pass
        assert await b.fetchval("SELECT balance FROM accounts WHERE id = 1") == 1
    finally:
        await a.close()
        await b.close()
    print("ok")


asyncio.run(main(sys.argv[1]))
