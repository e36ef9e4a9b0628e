"""SQL backends: SQLite (embedded, the standard library's driver) and PostgreSQL (psycopg 3).

Both share one schema, its migrations and the threaded base in :mod:`.base`; each driver
module is imported only when its backend is used.
"""
