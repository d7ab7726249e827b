"""The schema files as the package ``engine.schemas`` (pyproject.toml maps it onto this folder).

SQL migrations (``pg_*.sql``, ``earnings/``) and the JSON schemas of the published messages
(``*.schema.json``) ship inside the wheel; code finds them through ``importlib.resources``
(``engine.migrations.SCHEMA_DIR``). No Python code lives here.
"""
