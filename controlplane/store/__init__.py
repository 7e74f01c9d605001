"""Persistence: the only package that imports SQLAlchemy.

``Store`` bundles one repository per resource over one database. All state of the control
plane lives here, so any number of API processes can share one PostgreSQL.
"""

from controlplane.store.facade import Store, open_configured_store, open_store

__all__ = ["Store", "open_configured_store", "open_store"]
