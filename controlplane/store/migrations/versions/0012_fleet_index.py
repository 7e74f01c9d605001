"""fleet epoch: a counter every placement-relevant host or data-centre change bumps

Revision ID: 0012
Revises: 0011

The scheduler's in-process fleet index (``controlplane/store/fleet_index.py``) keeps its
snapshot between decisions and reloads it when this counter moves. Database triggers bump
it, so every writer (any replica, any code path, a hand-written UPDATE) is covered:

- a host is added or removed;
- a host's state, data centre, traits or usable totals change;
- a host's usage goes DOWN in some dimension (a release: room appeared). Claims, which only
  add usage, do not bump it: a replica patches its own claims into its index, and another
  replica's claims are caught by the claim's conditional UPDATE (and a periodic reload);
- a data centre's state changes.

SQLite: a one-row table ``fleet_epoch`` updated by the triggers (writers are serialised
anyway). PostgreSQL: a sequence, so the triggers never take a row lock that concurrent
deletes or migrations could queue or deadlock on.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The host columns whose change matters to the scheduler (besides usage going down).
_HOST_FIELDS = ("state", "datacentre", "usable_vcpus", "usable_ram_mib", "usable_disk_gib")
_USED = ("used_vcpus", "used_ram_mib", "used_disk_gib")


def _host_changed(distinct: str, traits: str) -> str:
    """The WHEN condition of the host UPDATE trigger, in the dialect's words."""
    fields = [f"OLD.{c} {distinct} NEW.{c}" for c in _HOST_FIELDS]
    released = [f"NEW.{c} < OLD.{c}" for c in _USED]
    return " OR ".join([*fields, traits, *released])


def _upgrade_sqlite() -> None:
    op.execute(
        "CREATE TABLE fleet_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)"
    )
    op.execute("INSERT INTO fleet_epoch (id, n) VALUES (1, 0)")
    bump = "BEGIN UPDATE fleet_epoch SET n = n + 1 WHERE id = 1; END"
    changed = _host_changed("IS NOT", "OLD.traits IS NOT NEW.traits")
    op.execute(f"CREATE TRIGGER fleet_epoch_host_insert AFTER INSERT ON hosts {bump}")
    op.execute(f"CREATE TRIGGER fleet_epoch_host_delete AFTER DELETE ON hosts {bump}")
    op.execute(
        f"CREATE TRIGGER fleet_epoch_host_update AFTER UPDATE ON hosts WHEN {changed} {bump}"
    )
    op.execute(
        "CREATE TRIGGER fleet_epoch_dc_update AFTER UPDATE ON datacentres "
        f"WHEN OLD.state IS NOT NEW.state {bump}"
    )


def _upgrade_postgresql() -> None:
    op.execute("CREATE SEQUENCE fleet_epoch_seq")
    op.execute(
        "CREATE FUNCTION fleet_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM nextval('fleet_epoch_seq'); RETURN NULL; END $$"
    )
    changed = _host_changed(
        "IS DISTINCT FROM", "OLD.traits::text IS DISTINCT FROM NEW.traits::text"
    )
    op.execute(
        "CREATE TRIGGER fleet_epoch_host_insert_delete AFTER INSERT OR DELETE ON hosts "
        "FOR EACH ROW EXECUTE FUNCTION fleet_epoch_bump()"
    )
    op.execute(
        "CREATE TRIGGER fleet_epoch_host_update AFTER UPDATE ON hosts FOR EACH ROW "
        f"WHEN ({changed}) EXECUTE FUNCTION fleet_epoch_bump()"
    )
    op.execute(
        "CREATE TRIGGER fleet_epoch_dc_update AFTER UPDATE ON datacentres FOR EACH ROW "
        "WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION fleet_epoch_bump()"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER fleet_epoch_dc_update ON datacentres")
        op.execute("DROP TRIGGER fleet_epoch_host_update ON hosts")
        op.execute("DROP TRIGGER fleet_epoch_host_insert_delete ON hosts")
        op.execute("DROP FUNCTION fleet_epoch_bump()")
        op.execute("DROP SEQUENCE fleet_epoch_seq")
        return
    for name in ("dc_update", "host_update", "host_delete", "host_insert"):
        op.execute(f"DROP TRIGGER fleet_epoch_{name}")
    op.execute("DROP TABLE fleet_epoch")
