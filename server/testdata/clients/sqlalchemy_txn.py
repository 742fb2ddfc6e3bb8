"""SQLAlchemy 1.4 sessions over psycopg2 against kvnode: the ORM's unit of
work commits in one transaction, a failed flush rolls back, and nested
transactions are savepoints.

Usage: python3 sqlalchemy_txn.py URL. Prints "ok" and exits 0, or raises.
The table `accounts (id INT PRIMARY KEY, balance INT)` must exist, empty."""
import sys

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session, declarative_base

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = sa.create_engine(url, future=True)
Base = declarative_base()


class Account(Base):
    __tablename__ = "accounts"
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    balance = sa.Column(sa.Integer)


with Session(engine) as s:
    s.add_all([Account(id=1, balance=100), Account(id=2, balance=100)])
    s.commit()

with Session(engine) as s:
    a, b = s.get(Account, 1), s.get(Account, 2)
    a.balance -= 25
    b.balance += 25
    s.commit()

with Session(engine) as s:
    s.add(Account(id=1, balance=0))  # duplicate key
    try:
        s.commit()
        raise AssertionError("duplicate key accepted")
    except exc.IntegrityError:
        s.rollback()

with Session(engine) as s:
    nested = s.begin_nested()
    s.get(Account, 2).balance = 0
    nested.rollback()
    s.commit()

with Session(engine) as s:
    got = [(x.id, x.balance) for x in s.query(Account).order_by(Account.id)]
    assert got == [(1, 75), (2, 125)], got
print("ok")
