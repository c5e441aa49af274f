"""The clock CronJob schedules are read on: the wall clock itself by default; the tests' fast clock reads the
wall clock's time at its anchor and runs 60/minute times as fast, and converts back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshd.controller.cronclock import CronClock, cron_clock
from meshd.controller.cronjobs import plan_cronjob
from meshd.model.cron import parse_schedule

START = datetime(2026, 12, 5, 18, 0, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("clock", "wall", "schedule"), [
    # the default: the wall clock, whatever the time
    (cron_clock(60, now=START), START, START),
    (cron_clock(60, now=START), START + 90.5, START + 90.5),
    # a 5 s minute from START: 12 schedule seconds a second
    (cron_clock(5, now=START), START, START),
    (cron_clock(5, now=START), START + 5, START + 60),
    (cron_clock(5, now=START), START + 2.5, START + 30),
    (cron_clock(5, now=START), START - 1, START - 12),  # (a CronJob created before the agent started)
    # a 1 s minute
    (cron_clock(1, now=START), START + 10, START + 600),
])
def test_the_schedule_clocks_time_and_back(clock, wall, schedule):
    moment = clock.schedule_time(wall)
    assert moment == datetime.fromtimestamp(schedule, tz=UTC)
    assert clock.wall_time(moment) == pytest.approx(wall)


def test_the_default_is_the_wall_clock_exactly():
    assert cron_clock(60, now=START) == CronClock()
    assert CronClock().schedule_time(1e9 + 0.123456).timestamp() == 1e9 + 0.123456


@pytest.mark.parametrize("minute", [0, -5])
def test_a_minute_lasts_some_time(minute):
    with pytest.raises(ValueError, match="more than 0 seconds"):
        CronClock(minute=minute)


def test_a_fast_clock_brings_the_next_run_seconds_away():
    """The pure plan is unchanged: fed the fast clock's time, it wakes at the next schedule minute, which is
    a few wall-clock seconds away."""
    clock = cron_clock(5, now=START)
    plan = plan_cronjob(name="tick", schedule=parse_schedule("*/1 * * * *"), now=clock.schedule_time(START + 1),
                        created=clock.schedule_time(START), last_schedule=None, suspend=False,
                        concurrency="Forbid", starting_deadline=None, active=(), existing=())
    assert plan.run_at is None and plan.wake_at is not None
    assert plan.wake_at - clock.schedule_time(START) == timedelta(seconds=30)  # 18:01:00, on the fast clock
    assert clock.wall_time(plan.wake_at) == pytest.approx(START + 2.5)  # 2.5 s after the start
