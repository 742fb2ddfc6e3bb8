"""SQLAlchemy 1.4 over psycopg2: create_all of models with a unique
column, a composite index and foreign keys (ON DELETE CASCADE, SET NULL),
then the ORM as an application uses it: parents and children added in one
transaction, a violation raised as IntegrityError, joins, cascades, and
the inspector's view of the indexes and foreign keys.

Usage: python3 sqlalchemy_relations.py URL. Prints "ok" and exits 0, or raises."""
import os
import sys

os.environ["SQLALCHEMY_SILENCE_UBER_WARNING"] = "1"  # before the import: 1.4's notice about 2.0

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session, declarative_base, relationship

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = sa.create_engine(url, future=True)
Base = declarative_base()


# Ids are BIGINT: a SERIAL is INT8 (unique_rowid()), as in CockroachDB.
class Author(Base):
    __tablename__ = "authors"
    id = sa.Column(sa.BigInteger, primary_key=True)
    email = sa.Column(sa.String(80), unique=True, nullable=False)
    name = sa.Column(sa.String(40))
    books = relationship("Book", back_populates="author", passive_deletes=True, foreign_keys="Book.author_id")


class Book(Base):
    __tablename__ = "books"
    id = sa.Column(sa.BigInteger, primary_key=True)
    author_id = sa.Column(sa.BigInteger, sa.ForeignKey("authors.id", ondelete="CASCADE"), nullable=False, index=True)
    title = sa.Column(sa.String(80), nullable=False)
    year = sa.Column(sa.Integer)
    editor_id = sa.Column(sa.BigInteger, sa.ForeignKey("authors.id", ondelete="SET NULL"))
    author = relationship("Author", back_populates="books", foreign_keys=[author_id])
    __table_args__ = (sa.Index("books_title_year", "title", "year"),)


ddl = engine.execution_options(isolation_level="AUTOCOMMIT")
Base.metadata.create_all(ddl)

with Session(engine) as s:
    ada = Author(email="ada@x", name="Ada")
    bob = Author(email="bob@x", name="Bob")
    s.add_all([ada, bob])
    s.flush()
    s.add_all([
        Book(author=ada, title="Notes", year=1843, editor_id=bob.id),
        Book(author=ada, title="Letters", year=1851),
        Book(author=bob, title="Logic", year=1854, editor_id=ada.id),
    ])
    s.commit()

# A child without its parent, and a duplicate of a unique column, are
# IntegrityErrors and change nothing.
for bad in (lambda s: s.add(Book(author_id=999, title="Orphan")),
            lambda s: s.add(Author(email="ada@x", name="Twin"))):
    with Session(engine) as s:
        bad(s)
        try:
            s.commit()
        except exc.IntegrityError:
            s.rollback()
        else:
            raise AssertionError("a violation was committed")

with Session(engine) as s:
    rows = s.execute(sa.select(Author.name, sa.func.count(Book.id)).join(Book, Book.author_id == Author.id)
                     .group_by(Author.name).order_by(Author.name)).all()
    assert [tuple(r) for r in rows] == [("Ada", 2), ("Bob", 1)], rows
    notes = s.execute(sa.select(Book).where(Book.title == "Notes", Book.year == 1843)).scalar_one()
    assert notes.author.email == "ada@x"
    s.delete(s.execute(sa.select(Author).where(Author.email == "bob@x")).scalar_one())
    s.commit()

with Session(engine) as s:
    titles = s.execute(sa.select(Book.title).order_by(Book.title)).scalars().all()
    assert titles == ["Letters", "Notes"], titles  # Logic went with Bob (CASCADE)
    notes = s.execute(sa.select(Book).where(Book.title == "Notes")).scalar_one()
    assert notes.editor_id is None, notes.editor_id  # SET NULL

insp = sa.inspect(engine)
idx = {i["name"]: i for i in insp.get_indexes("books")}
assert idx["books_title_year"]["column_names"] == ["title", "year"], idx
assert idx["ix_books_author_id"]["column_names"] == ["author_id"], idx
assert any(i["unique"] and i["column_names"] == ["email"] for i in insp.get_indexes("authors")) or \
    any(u["column_names"] == ["email"] for u in insp.get_unique_constraints("authors")), insp.get_indexes("authors")
fks = sorted((f["constrained_columns"], f["referred_table"], f["referred_columns"], f.get("options", {}).get("ondelete"))
             for f in insp.get_foreign_keys("books"))
assert fks == [(["author_id"], "authors", ["id"], "CASCADE"), (["editor_id"], "authors", ["id"], "SET NULL")], fks
print("ok")
