"""Usage behaviour of domains: synthetic on simulated hosts, measured on real ones.

Owns how the agent turns a Cloud Open Lab :class:`~agents.protocol.v1.LoadProfile` into a
utilisation sample. On the libvirt **test driver** (``test:///...``) nothing consumes CPU,
so :class:`SyntheticUsage` evaluates the profile's curves -- data sent by the control
plane, not code -- at the time elapsed since the load began (ARCHITECTURE.md principle 6:
behaviour the test driver lacks comes from data). On **real hosts**
:class:`LibvirtUsage` reads the domain's own statistics through the driver's connection
(per-domain ``getCPUStats``, ``memoryStats``, ``blockInfo``; ``getAllDomainStats`` is thin
on the test driver and not needed): CPU as the rate of ``cpu_time`` between two samples,
RAM as resident memory, disk as allocation over capacity. This module never imports
libvirt: it uses the connection object the libvirt driver hands out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agents.drivers.base import domain_name
from agents.protocol.v1 import CurveShape, LoadCurve, LoadProfile, UsageSample


def curve_value(curve: LoadCurve, elapsed_s: float) -> float:
    """The curve's utilisation ``elapsed_s`` seconds after the load began (0..1)."""
    t = max(0.0, elapsed_s)
    span = curve.high - curve.low
    if curve.shape is CurveShape.CONSTANT:
        value = curve.high
    elif curve.shape is CurveShape.RAMP:
        value = curve.low + span * min(1.0, t / curve.period_s)
    elif curve.shape is CurveShape.SINE:
        value = curve.low + span * (0.5 - 0.5 * math.cos(2 * math.pi * t / curve.period_s))
    else:  # SQUARE
        phase = (t % curve.period_s) / curve.period_s
        value = curve.high if phase < curve.duty else curve.low
    return min(1.0, max(0.0, value))


class UsageSource(Protocol):
    """Where a sample of one instance's usage comes from."""

    def sample(
        self, instance_id: str, profile: LoadProfile, elapsed_s: float, now_s: float
    ) -> UsageSample | None:
        """A sample (None when it cannot be measured now)."""
        ...


class SyntheticUsage:
    """The profile's curves, evaluated at the time since the load began (simulated hosts)."""

    def sample(
        self, instance_id: str, profile: LoadProfile, elapsed_s: float, now_s: float
    ) -> UsageSample | None:
        """Deterministic: the same profile and elapsed time give the same sample."""
        del now_s
        return UsageSample(
            instance_id=instance_id,
            cpu=round(curve_value(profile.cpu, elapsed_s), 6),
            ram=round(curve_value(profile.ram, elapsed_s), 6),
            disk=round(curve_value(profile.disk, elapsed_s), 6),
            source="synthetic",
        )


@dataclass
class _CpuMark:
    at_s: float
    cpu_time_ns: int


class LibvirtUsage:
    """Measured usage from libvirt domain statistics (real hosts).

    ``connect`` returns a libvirt ``virConnect`` (``lambda: driver.connection``, which
    reconnects after libvirtd restarts). The first sample of a domain has no CPU rate yet
    and is skipped.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect = connect
        self._cpu: dict[str, _CpuMark] = {}

    def sample(
        self, instance_id: str, profile: LoadProfile, elapsed_s: float, now_s: float
    ) -> UsageSample | None:
        """CPU, RAM and disk utilisation of the domain, or None (first look, or gone)."""
        del profile, elapsed_s
        try:
            dom = self.connect().lookupByName(domain_name(instance_id))
            info = dom.info()  # [state, max KiB, used KiB, vcpus, cpu_time ns]
            max_kib, vcpus, cpu_time = int(info[1]), max(1, int(info[3])), int(info[4])
            ram = self._ram(dom, max_kib)
            disk = self._disk(dom)
        except Exception:  # the domain went away or the hypervisor cannot say
            self._cpu.pop(instance_id, None)
            return None
        mark = self._cpu.get(instance_id)
        self._cpu[instance_id] = _CpuMark(now_s, cpu_time)
        if mark is None or now_s <= mark.at_s:
            return None
        used_s = max(0, cpu_time - mark.cpu_time_ns) / 1e9
        cpu = min(1.0, used_s / ((now_s - mark.at_s) * vcpus))
        return UsageSample(instance_id=instance_id, cpu=cpu, ram=ram, disk=disk, source="libvirt")

    @staticmethod
    def _ram(dom: Any, max_kib: int) -> float:
        try:
            stats = dom.memoryStats()
        except Exception:
            return 0.0
        used = stats.get("rss")
        if "available" in stats and "unused" in stats:
            used = stats["available"] - stats["unused"]
        return 0.0 if not used or max_kib <= 0 else min(1.0, max(0.0, used / max_kib))

    @staticmethod
    def _disk(dom: Any) -> float:
        for dev in ("vda", "sda", "hda"):
            try:
                capacity, allocation, _physical = dom.blockInfo(dev)
            except Exception:  # noqa: S112 - no such device: try the next bus
                continue
            return 0.0 if capacity <= 0 else min(1.0, max(0.0, allocation / capacity))
        return 0.0


def usage_source_for(uri: str, connect: Callable[[], Any] | None) -> UsageSource:
    """Synthetic usage on the libvirt test driver, measured usage anywhere else."""
    if uri.startswith("test:") or connect is None:
        return SyntheticUsage()
    return LibvirtUsage(connect)
