"""What migration tools send: SQLAlchemy 1.4's create_all/drop_all over
psycopg2 with no AUTOCOMMIT workaround (psycopg2 opens a transaction, so
the DDL runs inside BEGIN ... COMMIT), then Alembic's whole workflow (init,
a model, revision --autogenerate, upgrade head, a write; a second
migration adding columns to the tables the first made, upgrade head,
downgrade -1, downgrade base), each step in the transaction Alembic
opens.

Usage: python3 migration_tools.py URL WORKDIR (an empty directory).

Prints one line per step: "<step>: ok" or "<step>: error <SQLSTATE>
<message's first line>" (and the error's hint on the next line), and after every step the tables of schema public
("tables: a b"), so that a step that failed can be seen to have left
nothing behind. A step that fails does not stop the script: the later
steps show what a user meets next. The output is the same on every server
that runs the DDL (no generated IDs or times are printed);
TestMigrationToolsMatchPostgres compares it with PostgreSQL's."""
import contextlib
import io
import os
import re
import sys

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session, declarative_base

url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
workdir = sys.argv[2]
engine = sa.create_engine(url, future=True)


def tables():
    with engine.connect() as c:
        names = c.execute(sa.text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name")).scalars().all()
    print("tables: " + " ".join(names))


def step(name, fn):
    """Runs fn, prints its outcome and the tables, and says if it worked.
    What fn prints itself is kept; Alembic's own messages (paths) are not."""
    try:
        fn()
    except sa.exc.DBAPIError as e:
        if getattr(e.orig, "pgcode", None) is None:
            raise  # not the server's answer (a lost connection): the run is broken
        msg = str(getattr(e.orig, "pgerror", None) or e.orig).strip().splitlines()[0]
        msg = re.sub(r"^ERROR:\s+", "", msg)
        print("%s: error %s %s" % (name, e.orig.pgcode, msg))
        if e.orig.diag.message_hint:
            print("  hint: " + e.orig.diag.message_hint)
        tables()
        return False
    print(name + ": ok")
    tables()
    return True


# ---- SQLAlchemy: create_all and drop_all in psycopg2's transaction ----

Base = declarative_base()


class Author(Base):
    __tablename__ = "authors"
    id = sa.Column(sa.Integer, primary_key=True)  # SERIAL
    name = sa.Column(sa.String(50), nullable=False, unique=True)


class Book(Base):
    __tablename__ = "books"
    id = sa.Column(sa.Integer, primary_key=True)
    author_id = sa.Column(sa.Integer, sa.ForeignKey("authors.id"), nullable=False)
    title = sa.Column(sa.Text, nullable=False, index=True)


def fill():
    with Session(engine) as s:
        a = Author(name="ada")
        s.add(a)
        s.flush()
        s.add_all([Book(author_id=a.id, title="notes"), Book(author_id=a.id, title="letters")])
        s.commit()
    with Session(engine) as s:
        n = s.execute(sa.select(sa.func.count()).select_from(Book).join(Author)).scalar_one()
    print("books: %d" % n)


if step("create_all", lambda: Base.metadata.create_all(engine)):
    step("orm writes", fill)
step("drop_all", lambda: Base.metadata.drop_all(engine))


def cleanup():
    """Drops, with autocommit, what the steps above left behind (on a
    server where drop_all fails), so that Alembic starts from the same
    empty schema on every server and its steps compare on their own."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for t in ("books", "authors"):
            c.execute(sa.text("DROP TABLE IF EXISTS %s" % t))


step("cleanup (autocommit)", cleanup)

# ---- Alembic: the first migration ----

os.chdir(workdir)
cfg = Config("alembic.ini")


def alembic(fn, *args, **kw):
    """Runs an Alembic command without its messages (they name the
    temporary directory)."""
    with contextlib.redirect_stdout(io.StringIO()):
        fn(cfg, *args, **kw)


alembic(command.init, "migrations")  # writes alembic.ini and migrations/
print("init: ok")
cfg = Config("alembic.ini")
cfg.set_main_option("sqlalchemy.url", url)

with open("models.py", "w") as f:
    f.write('''import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("name", sa.String(50)),
    sa.Index("ix_users_email", "email", unique=True),
)
notes = sa.Table(
    "notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("body", sa.Text),
)
''')
env = open("migrations/env.py").read()
env = env.replace("target_metadata = None",
                  "import sys\nsys.path.insert(0, %r)\nimport models\ntarget_metadata = models.metadata" % workdir)
env = env.replace("fileConfig(config.config_file_name)", "pass  # no logging: the output is compared")
open("migrations/env.py", "w").write(env)


def revision():
    alembic(command.revision, message="first", autogenerate=True)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_revision("head")
    ops = sorted(set(re.findall(r"op\.(create_table|create_index)\(\s*(?:op\.f\()?'(\w+)'", open(head.path).read())))
    print("autogenerated: " + " ".join("%s(%s)" % op for op in ops))


def version():
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    with engine.connect() as c:
        got = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    print("alembic_version: " + ("head" if got == [head] and head else repr(got)))


def write():
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO users (id, email) VALUES (1, 'ada@example.com')"))
        c.execute(sa.text("INSERT INTO notes (id, user_id, body) VALUES (1, 1, 'hello')"))
    with engine.connect() as c:
        print("notes: %d" % c.execute(sa.text("SELECT count(*) FROM notes")).scalar_one())


step("revision --autogenerate", revision)
if step("upgrade head", lambda: alembic(command.upgrade, "head")):
    step("version", version)
    step("write", write)

# ---- Alembic: a second migration, on the tables the first one made ----

with open("models.py", "a") as f:
    f.write('''
users.append_column(sa.Column("nickname", sa.String(30)))
users.append_column(sa.Column("karma", sa.Integer, nullable=False, server_default="0"))
''')
sys.modules.pop("models", None)  # env.py imports it again


def second_revision():
    alembic(command.revision, message="second", autogenerate=True)
    head = ScriptDirectory.from_config(cfg).get_revision("head")
    ops = sorted(set(re.findall(r"op\.(add_column|drop_column|alter_column|create_table|drop_table|create_index|drop_index)\(\s*'(\w+)'",
                                open(head.path).read())))
    print("autogenerated: " + " ".join("%s(%s)" % op for op in ops))


def read_second():
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT email, nickname, karma FROM users WHERE id = 1")).one()
    print("users row: %s %s %s" % tuple(row))


step("revision --autogenerate (second)", second_revision)
if step("upgrade head (second)", lambda: alembic(command.upgrade, "head")):
    step("version", version)
    step("read the new columns", read_second)
step("downgrade -1", lambda: alembic(command.downgrade, "-1"))
step("downgrade base", lambda: alembic(command.downgrade, "base"))
