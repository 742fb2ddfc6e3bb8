# SQLAlchemy 1.4's inspector with psycopg2, unmodified: prints what each
# inspector call read from the server's catalog, for TestCatalogMatchesPostgres
# to compare kvnode's answers with PostgreSQL's.
# Usage: sqlalchemy_catalog_dump.py URL < CALLS
# Each line of CALLS is an inspector method and its arguments, e.g.
# "get_columns authors"; the output is the call, then one line per element
# of its result (dict keys sorted, types by repr).
import os
import sys

os.environ["SQLALCHEMY_SILENCE_UBER_WARNING"] = "1"  # before the import: 1.4's notice about 2.0

import sqlalchemy as sa


def show(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k, show(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    return repr(v)


url = sys.argv[1].replace("postgresql://", "postgresql+psycopg2://", 1)
insp = sa.inspect(sa.create_engine(url))
for call in sys.stdin:
    words = call.split()
    if not words:
        continue
    print(call.strip())
    result = getattr(insp, words[0])(*words[1:])
    if isinstance(result, list):
        for elem in result:
            print("  " + show(elem))
    else:
        print("  " + show(result))
