"""Cron schedules as a CronJob's spec.schedule gives them: five fields (minute hour day-of-month month
day-of-week) or a macro (@hourly, @daily...), evaluated in a time zone. Parsing and evaluation are cronsim's;
the rules Kubernetes adds (exactly five fields, its macros, no TZ= prefix) are here. Pure."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

# robfig/cron's descriptors, which Kubernetes accepts (not @every, not @reboot)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule Kubernetes would refuse."""


@functools.cache
def known_zones() -> frozenset[str]:
    """The time zone database's names (reads the disk once: the agent calls it off its loop at start)."""
    return frozenset(available_timezones())


_LOADED: dict[str, tzinfo] = {"UTC": UTC, "Etc/UTC": UTC}


def load_zone(name: str) -> tzinfo:
    """A time zone by its name, read from the database once (blocking: call it off the loop)."""
    if name not in _LOADED:
        _LOADED[name] = ZoneInfo(name)
    return _LOADED[name]


def loaded_zone(name: str | None) -> tzinfo | None:
    """The zone if it was loaded already (UTC when None), without touching the disk."""
    return _LOADED.get(name or "UTC")


@dataclass(frozen=True)
class Schedule:
    expression: str  # the five fields, macros expanded
    zone: tzinfo = UTC

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The schedule's times strictly after `moment` (an aware datetime), in this zone."""
        return CronSim(self.expression, moment.astimezone(self.zone))

    def latest(self, moment: datetime) -> datetime:
        """The schedule's last time at or before `moment`."""
        return next(CronSim(self.expression, (moment + timedelta(microseconds=1)).astimezone(self.zone),
                            reverse=True))


def parse_schedule(text: str, zone: tzinfo = UTC) -> Schedule:
    """The schedule of a CronJob, in `zone`; CronError says why Kubernetes would refuse it."""
    spec = " ".join(text.split())
    if spec.upper().startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@"):
        if spec.lower() not in MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = MACROS[spec.lower()]
    fields = spec.split(" ")
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    day_of_month, day_of_week = fields[2].upper(), fields[4].upper().replace("WED", "")
    if any(c in day_of_month for c in "LW") or any(c in day_of_week for c in "LW#"):
        raise CronError(f"unsupported syntax in {text!r} (L, W and # are not standard cron)")
    try:
        CronSim(spec, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise CronError(str(error)) from None
    return Schedule(spec, zone)


__all__ = ["MACROS", "CronError", "Schedule", "known_zones", "load_zone", "loaded_zone", "parse_schedule"]
