# SQLAlchemy 1.4's inspector with psycopg2, unmodified, against kvnode: the
# introspection Alembic autogenerate and SQLAlchemy's reflection run.
# Usage: sqlalchemy_inspect.py URL. Prints "ok" or fails with the mismatch.
import sys

import sqlalchemy as sa

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = sa.create_engine(url)
insp = sa.inspect(engine)


def check(what, got, want):
    if got != want:
        raise SystemExit("%s: got %r, want %r" % (what, got, want))


check("get_table_names", sorted(insp.get_table_names()), ["kv", "two"])
cols = insp.get_columns("kv")
check("kv columns", [(c["name"], str(c["type"]), c["nullable"]) for c in cols],
      [("k", "BIGINT", False), ("v", "TEXT", True), ("f", "DOUBLE_PRECISION", True)])
check("kv default", [c["default"] for c in cols], [None, "'x'", None])
check("kv pk", insp.get_pk_constraint("kv"), {"constrained_columns": ["k"], "name": "kv_pkey"})
check("two pk", insp.get_pk_constraint("two")["constrained_columns"], ["b", "a"])
check("kv indexes", insp.get_indexes("kv"), [])
check("kv foreign keys", insp.get_foreign_keys("kv"), [])
check("kv unique", insp.get_unique_constraints("kv"), [])
check("has_table", (insp.has_table("kv"), insp.has_table("nosuch")), (True, False))
check("schemas", "public" in insp.get_schema_names(), True)
with engine.connect() as conn:
    check("version", engine.dialect.server_version_info[:2], (13, 0))
    check("select", conn.execute(sa.text("SELECT v FROM kv WHERE k = :k"), {"k": 1}).scalar(), "one")
print("ok")
