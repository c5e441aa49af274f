"""The clock CronJob schedules are read on: the wall clock, or for tests a fast one on which a schedule's minute
lasts `minute` seconds (the agent's --cron-minute, 60 by default: the wall clock itself). The fast clock reads
the wall clock's time at `anchor` (the agent's start) and runs 60/minute times as fast from there, so a
CronJob's whole behaviour (its schedule, Forbid, Replace, startingDeadlineSeconds, the Jobs named after their
scheduled minute) plays out in seconds. Pure: the controller converts at its edges, the plans never know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MINUTE = 60.0


@dataclass(frozen=True)
class CronClock:
    minute: float = MINUTE  # wall-clock seconds a schedule minute lasts
    anchor: float = 0.0  # the wall-clock time at which both clocks read the same

    def __post_init__(self) -> None:
        if not self.minute > 0:
            raise ValueError(f"a schedule minute must last more than 0 seconds, not {self.minute}")

    @property
    def speed(self) -> float:
        """How many schedule seconds pass in one wall-clock second."""
        return MINUTE / self.minute

    def schedule_time(self, wall: float) -> datetime:
        """The schedule clock's time at the wall-clock time `wall` (seconds since the epoch)."""
        if self.minute == MINUTE:
            return datetime.fromtimestamp(wall, tz=UTC)
        return datetime.fromtimestamp(self.anchor + (wall - self.anchor) * self.speed, tz=UTC)

    def wall_time(self, moment: datetime) -> float:
        """The wall-clock time (seconds since the epoch) at which the schedule clock reads `moment`."""
        if self.minute == MINUTE:
            return moment.timestamp()
        return self.anchor + (moment.timestamp() - self.anchor) / self.speed


def cron_clock(minute: float, *, now: float) -> CronClock:
    """The wall clock for a 60 s minute, else a fast clock that starts `now` at the wall clock's time."""
    return CronClock() if minute == MINUTE else CronClock(minute=minute, anchor=now)


__all__ = ["MINUTE", "CronClock", "cron_clock"]
