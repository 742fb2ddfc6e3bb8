"""SQLAlchemy 1.4 over psycopg2: create_all of a model with the types of
kvnode 2.1, then ORM inserts, queries and updates, as an application does.

Usage: python3 sqlalchemy_types.py URL. Prints "ok" and exits 0, or raises."""
import datetime
import decimal
import sys
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, declarative_base

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = sa.create_engine(url, future=True)
Base = declarative_base()


class Order(Base):
    __tablename__ = "orders"
    id = sa.Column(sa.BigInteger, primary_key=True)  # BIGSERIAL
    ref = sa.Column(postgresql.UUID(as_uuid=True), nullable=False, server_default=sa.text("gen_random_uuid()"))
    customer = sa.Column(sa.String(40), nullable=False)
    amount = sa.Column(sa.Numeric(12, 2), nullable=False)
    paid = sa.Column(sa.Boolean, nullable=False, default=False)
    created = sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    due = sa.Column(sa.Date)
    qty = sa.Column(sa.SmallInteger)
    rate = sa.Column(sa.Float)
    meta = sa.Column(postgresql.JSONB)


class Item(Base):
    __tablename__ = "items"
    id = sa.Column(sa.Integer, primary_key=True)  # SERIAL
    name = sa.Column(sa.Unicode(20))
    stamp = sa.Column(sa.DateTime)
    wait = sa.Column(sa.Interval)


# create_all runs in the transaction psycopg2 opens (kvnode runs CREATE
# TABLE in a transaction); drop_all runs with autocommit, the other way a
# tool may send it (migration_tools.py sends it in a transaction).
ddl = engine.execution_options(isolation_level="AUTOCOMMIT")
Base.metadata.create_all(engine)

with Session(engine) as s:
    s.add_all([
        Order(customer="ada", amount=decimal.Decimal("12.345"), due=datetime.date(2024, 2, 29), qty=3,
              rate=0.5, meta={"tags": ["a", "b"], "vip": True}),
        Order(customer="bob", amount=decimal.Decimal("99.99"), paid=True),
    ])
    s.add(Item(name="x", stamp=datetime.datetime(2024, 1, 2, 3, 4, 5, 600000), wait=datetime.timedelta(days=1, hours=2)))
    s.commit()

with Session(engine) as s:
    ada = s.execute(sa.select(Order).where(Order.customer == "ada")).scalar_one()
    assert ada.amount == decimal.Decimal("12.35"), ada.amount
    assert isinstance(ada.ref, uuid.UUID), ada.ref
    assert ada.due == datetime.date(2024, 2, 29), ada.due
    assert ada.created.tzinfo is not None, ada.created
    assert ada.meta == {"tags": ["a", "b"], "vip": True}, ada.meta
    assert ada.id > 0
    ada.amount += decimal.Decimal("0.65")
    ada.paid = True
    s.commit()

with Session(engine) as s:
    total = s.execute(sa.select(sa.func.sum(Order.amount)).where(Order.paid)).scalar_one()
    assert total == decimal.Decimal("112.99"), total
    recent = s.execute(sa.select(sa.func.count()).select_from(Order).where(
        Order.created > datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))).scalar_one()
    assert recent == 2, recent
    vip = s.execute(sa.select(Order.customer).where(Order.meta["vip"].astext == "true")).scalars().all()
    assert vip == ["ada"], vip
    item = s.execute(sa.select(Item)).scalar_one()
    assert item.id > 0 and item.wait == datetime.timedelta(days=1, hours=2), (item.id, item.wait)
    assert item.stamp == datetime.datetime(2024, 1, 2, 3, 4, 5, 600000), item.stamp

insp = sa.inspect(engine)
cols = {c["name"]: c for c in insp.get_columns("orders")}
assert isinstance(cols["amount"]["type"], sa.Numeric) and cols["amount"]["type"].scale == 2, cols["amount"]
assert isinstance(cols["customer"]["type"], sa.String) and cols["customer"]["type"].length == 40, cols["customer"]
assert isinstance(cols["created"]["type"], sa.DateTime) and cols["created"]["type"].timezone, cols["created"]

Base.metadata.drop_all(ddl)
print("ok")
