# SQLAlchemy 1.4's inspector with psycopg2, unmodified, against two kvnode
# databases: each engine's inspector sees the tables of the database it is
# connected to, and only those.
# Usage: sqlalchemy_databases.py DEFAULTDB_URL APP_URL. Prints "ok" or fails.
import sys

import sqlalchemy as sa


def engine(url):
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))


def check(what, got, want):
    if got != want:
        raise SystemExit("%s: got %r, want %r" % (what, got, want))


dflt, app = engine(sys.argv[1]), engine(sys.argv[2])
di, ai = sa.inspect(dflt), sa.inspect(app)
check("defaultdb tables", sorted(di.get_table_names()), ["only_default", "shared_name"])
check("app tables", sorted(ai.get_table_names()), ["only_app", "shared_name"])
check("app has_table", (ai.has_table("only_app"), ai.has_table("only_default")), (True, False))
check("defaultdb has_table", (di.has_table("only_app"), di.has_table("only_default")), (False, True))
check("app shared_name columns", [(c["name"], str(c["type"])) for c in ai.get_columns("shared_name")],
      [("id", "BIGINT"), ("in_app", "TEXT")])
check("defaultdb shared_name columns", [(c["name"], str(c["type"])) for c in di.get_columns("shared_name")],
      [("id", "BIGINT"), ("in_default", "BOOLEAN")])
check("app pk", ai.get_pk_constraint("only_app"), {"constrained_columns": ["a", "b"], "name": "only_app_pkey"})
check("app indexes", ai.get_indexes("only_app"), [])
with app.connect() as conn:
    check("current_database", conn.execute(sa.text("SELECT current_database()")).scalar(), "app")
    check("rows", conn.execute(sa.text("SELECT in_app FROM shared_name WHERE id = 1")).scalar(), "app's")
print("ok")
