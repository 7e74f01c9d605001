"""User actions on instances: start, stop, reboot, delete and resize."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.domain.errors import InvalidRequest, NotFound
from controlplane.domain.instance import (
    Instance,
    InstanceState,
    PowerIntent,
    check_action,
)
from controlplane.domain.resources import Resources
from controlplane.store import quota
from controlplane.store.host import bump_assignments
from controlplane.store.instance_base import (
    InstanceBase,
    S,
    check_image_fits,
    host_name_of,
    resources_of,
    to_model,
)
from controlplane.store.placement import resize_claim
from controlplane.store.tables import (
    FlavorRow,
    ImageRow,
    InstanceActionRow,
    InstanceResizeRow,
)


class InstanceActions(InstanceBase):
    """``request`` and ``resize``."""

    # -- user actions -------------------------------------------------------------------

    def request(
        self, instance_id: str, action: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Record the user's intent (start/stop/reboot/delete) for the agent to carry out."""
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            state = InstanceState(row.state)
            check_action(action, state, instance_id)
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action=action,
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                )
            )
            if action == "start":
                row.desired_power = PowerIntent.RUNNING.value
            elif action == "stop":
                row.desired_power = PowerIntent.STOPPED.value
            elif action == "reboot":
                row.reboot_seq += 1
            elif state is S.PENDING:  # delete before placement: nothing to undo on a host
                row.state, row.deleted_at = S.DELETED.value, now
                quota.release(session, row.org_path, resources_of(row))
            else:
                row.state = S.DELETING.value
            row.updated_at = now
            session.flush()
            # Only what the request itself completes (deleting a PENDING instance): a reboot
            # is done when the agent reports it applied, never at request time.
            self._finish_actions(session, row, reboot_applied=0)
            bump_assignments(session, row.host_id)
            return to_model(row, host_name_of(session, row.host_id))

    def resize(
        self, instance_id: str, flavor: str, *, scope: str, actor: str, request_id: str
    ) -> Instance:
        """Give a STOPPED instance the sizes of ``flavor``, on the host it already has.

        One transaction, locks in the global order: the instance row, then the quota rows
        root first (only growing dimensions are checked: QuotaExceeded), then the host (a
        conditional UPDATE by the difference: InsufficientCapacity). Then the instance
        takes the new flavor and sizes, the resize is recorded for metering, an action row
        is added (finished when the agent reports the domain redefined) and the host's
        agent is woken. Everything or nothing.
        """
        now = self.clock()
        with self.db.transaction() as session:
            row = self._visible_row(session, instance_id, scope, lock=True)
            flavor_row = session.get(FlavorRow, flavor)
            if flavor_row is None:
                raise NotFound("flavor", flavor)
            if flavor == row.flavor:
                raise InvalidRequest(
                    f"instance {row.name} ({row.id}) already has flavor {flavor}; "
                    "choose another flavor",
                    field="flavor",
                    value=flavor,
                )
            check_action("resize", InstanceState(row.state), instance_id)
            old = resources_of(row)
            new = Resources(
                vcpus=flavor_row.vcpus, ram_mib=flavor_row.ram_mib, disk_gib=flavor_row.disk_gib
            )
            image_row = session.get(ImageRow, row.image)
            if image_row is not None:  # in use, so it cannot have been deleted
                check_image_fits(
                    image_row.name, image_row.min_ram_mib, image_row.min_disk_gib, flavor, new
                )
            assert row.host_id is not None  # a STOPPED instance holds a claim
            quota.adjust(session, row.org_path, old, new, now, row.id)
            resize_claim(session, row.host_id, old, new)
            session.add(
                InstanceResizeRow(
                    instance_id=row.id,
                    at=now,
                    old_flavor=row.flavor,
                    old_vcpus=old.vcpus,
                    old_ram_mib=old.ram_mib,
                    old_disk_gib=old.disk_gib,
                    new_flavor=flavor,
                    new_vcpus=new.vcpus,
                    new_ram_mib=new.ram_mib,
                    new_disk_gib=new.disk_gib,
                )
            )
            superseded = session.scalars(
                select(InstanceActionRow).where(
                    InstanceActionRow.instance_id == row.id,
                    InstanceActionRow.action == "resize",
                    InstanceActionRow.result == "pending",
                )
            )
            for earlier in superseded:
                earlier.result, earlier.finished_at = "cancelled", now
                earlier.message = f"superseded by a resize to {flavor} (request {request_id})"
            session.add(
                InstanceActionRow(
                    instance_id=row.id,
                    action="resize",
                    request_id=request_id,
                    actor=actor,
                    started_at=now,
                    message=f"{row.flavor} -> {flavor}",
                )
            )
            row.flavor = flavor
            row.vcpus, row.ram_mib, row.disk_gib = new.vcpus, new.ram_mib, new.disk_gib
            row.updated_at = now
            bump_assignments(session, row.host_id)
            return to_model(row, host_name_of(session, row.host_id))
