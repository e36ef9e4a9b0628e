"""The storage backends, one module or package each.

A backend imports the shared session modules (records, the repository contract, the layout,
the threaded base) and never another backend. :mod:`mooring.session.url` maps URL schemes to
them and imports one only when it is asked for, so a missing driver costs nothing until then.
"""
