"""Free start times ("slots") for an appointment type.

How a slot is found
- Weekly hours and date exceptions are wall-clock times in the ORGANIZATION's time zone
  (a 09:00-17:00 resource works 09:00-17:00 local on both sides of a DST change; its UTC
  hours move). A date exception replaces that date's weekly hours (closed, or its own
  intervals); a closed exception wins over others on the same date.
- Candidate starts step through each interval on the type's `slot_interval_minutes` grid,
  anchored at the interval's opening time, in wall-clock time. A candidate is offered when
  the appointment (its real duration, in elapsed time) fits inside the interval, it is at
  least `min_notice_minutes` away, at most `max_days_ahead` days away, and its blocked range
  (start - buffer before, end + buffer after) overlaps no live booking of that resource.
  Buffers may extend outside working hours (preparation before the first appointment of
  the day is normal); they never overlap another booking's blocked range.
- Times are returned as aware UTC datetimes; callers render local times with the
  organization's time zone, so a caller in any time zone reads unambiguous instants.

Daylight saving time (documented choices)
- Interval boundaries follow RFC 5545: an ambiguous wall time means its FIRST occurrence;
  a wall time inside a spring-forward gap is read with the offset before the gap (02:30 on
  America/New_York 2026-03-08 is 03:30 EDT). Python's `fold=0` does exactly this.
- Spring forward: a candidate start that does not exist (02:00-02:59 in New York) is
  skipped, never shifted: shifting would duplicate 03:00/03:30. The slots on either side
  remain, and a slot spanning the gap lasts its real duration (01:30 EST + 60 min ends at
  03:30 EDT).
- Fall back: a wall time that occurs twice (01:00-01:59 in New York on 2026-11-01) is two
  different instants, and both are offered when the resource works through them (a
  24-hour gym works that hour twice). They are distinct in UTC (05:30Z and 06:30Z) and in
  the local rendering (01:30-04:00 and 01:30-05:00), so there is no duplicate and no gap:
  the offered starts form a continuous grid in elapsed time.

Cost: one query each for resources, weekly hours, date exceptions and live bookings of the
window (three when no resource serves the type), whatever the range.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Value
from django.utils import timezone

from apps.bookings import errors
from apps.bookings.models import (
    LIVE_STATUSES,
    AppointmentType,
    Booking,
    DateException,
    Resource,
    TsTzRange,
    WeeklyHours,
)

Interval = tuple[time, time]


@dataclass(frozen=True)
class Slot:
    """A free start time; `resource_ids` are the resources free for it (in name order)."""

    start: datetime
    end: datetime
    resource_ids: tuple[uuid.UUID, ...]


def wall_time_instants(naive: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the wall clock of `tz` shows `naive`.

    [] inside a spring-forward gap, two instants in a fall-back overlap, else one.
    """
    instants: list[datetime] = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == naive and instant not in instants:
            instants.append(instant)
    return instants


def wall_time_boundary(day: date, at: time, tz: ZoneInfo) -> datetime:
    """An interval boundary as a UTC instant (RFC 5545: first occurrence; gap → offset before)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def wall_clock_of_day(day: date, tz: ZoneInfo):
    """`wall_time_instants` specialised to one day: plain arithmetic when the day has a single
    UTC offset (every day but a zone's change days), the general function otherwise."""
    midnight = datetime.combine(day, time(0))
    offsets = {
        moment.replace(tzinfo=tz, fold=fold).utcoffset()
        for moment in (midnight, midnight + timedelta(days=1))
        for fold in (0, 1)
    }
    if len(offsets) != 1:
        return lambda wall: wall_time_instants(wall, tz)
    (offset,) = offsets
    return lambda wall: ((wall - offset).replace(tzinfo=UTC),)


@dataclass
class _ResourceHours:
    weekly: dict[int, list[Interval]] = field(default_factory=lambda: defaultdict(list))
    exceptions: dict[date, list[DateException]] = field(default_factory=lambda: defaultdict(list))
    busy_starts: list[datetime] = field(default_factory=list)
    busy_ends: list[datetime] = field(default_factory=list)

    def intervals(self, day: date) -> list[Interval]:
        if day in self.exceptions:
            rows = self.exceptions[day]
            if any(row.is_closed for row in rows):
                return []
            return sorted((row.start_time, row.end_time) for row in rows)
        return sorted(self.weekly.get(day.weekday(), ()))

    def is_free(self, blocked_start: datetime, blocked_end: datetime) -> bool:
        # Live bookings of one resource never overlap (the exclusion constraint), so their
        # starts and ends are both sorted: the first booking ending after our blocked start
        # is the only one that can overlap it.
        index = bisect.bisect_right(self.busy_ends, blocked_start)
        return index == len(self.busy_starts) or self.busy_starts[index] >= blocked_end


class Availability:
    """Who is free when, for one appointment type and a window of candidate starts.

    Loads resources, hours, exceptions and live bookings with a fixed number of queries,
    then answers in memory. `window_start` is inclusive, `window_end` exclusive.
    """

    def __init__(
        self,
        *,
        organization,
        appointment_type: AppointmentType,
        window_start: datetime,
        window_end: datetime,
        resource: Resource | None = None,
        exclude_booking_id=None,
    ):
        self.tz = organization.tz
        self.appointment_type = appointment_type
        self.window_start = window_start
        self.window_end = window_end
        self.duration = timedelta(minutes=appointment_type.duration_minutes)
        self.buffer_before = timedelta(minutes=appointment_type.buffer_before_minutes)
        self.buffer_after = timedelta(minutes=appointment_type.buffer_after_minutes)
        self.step = timedelta(minutes=max(1, appointment_type.slot_interval_minutes))

        resources = Resource.objects.filter(
            organization=organization, is_active=True, appointment_types=appointment_type
        ).order_by("name", "id")
        if resource is not None:
            resources = resources.filter(pk=resource.pk)
        self.resources: list[Resource] = list(resources)
        self._hours: dict[uuid.UUID, _ResourceHours] = {
            r.pk: _ResourceHours() for r in self.resources
        }
        if not self.resources or window_end <= window_start:
            return

        ids = list(self._hours)
        first_day = window_start.astimezone(self.tz).date()
        last_day = window_end.astimezone(self.tz).date()
        for resource_id, weekday, start, end in WeeklyHours.objects.filter(
            resource_id__in=ids
        ).values_list("resource_id", "weekday", "start_time", "end_time"):
            self._hours[resource_id].weekly[weekday].append((start, end))
        for exception in DateException.objects.filter(
            resource_id__in=ids, date__gte=first_day, date__lte=last_day
        ).only("resource_id", "date", "start_time", "end_time"):
            self._hours[exception.resource_id].exceptions[exception.date].append(exception)

        # Every blocked range a candidate could have lies inside this span.
        span = DateTimeTZRange(
            window_start - self.buffer_before,
            window_end + self.duration + self.buffer_after,
            "[)",
        )
        busy = (
            Booking.objects.annotate(
                # the exact expression of the `booking_no_overlap` GiST index, so it is used
                blocked=TsTzRange("blocked_start", "blocked_end", RangeBoundary())
            )
            .filter(
                resource_id__in=ids,
                status__in=LIVE_STATUSES,
                blocked__overlap=Value(span, output_field=DateTimeRangeField()),
            )
            .order_by("resource_id", "blocked_start")
        )
        if exclude_booking_id is not None:
            busy = busy.exclude(pk=exclude_booking_id)
        for resource_id, blocked_start, blocked_end in busy.values_list(
            "resource_id", "blocked_start", "blocked_end"
        ):
            hours = self._hours[resource_id]
            hours.busy_starts.append(blocked_start)
            hours.busy_ends.append(blocked_end)

    def candidate_starts(self, resource: Resource) -> Iterator[datetime]:
        """Starts inside the resource's hours and on the grid, within the window (busy or not)."""
        hours = self._hours[resource.pk]
        day = self.window_start.astimezone(self.tz).date()
        last_day = (self.window_end - timedelta(microseconds=1)).astimezone(self.tz).date()
        while day <= last_day:
            intervals = hours.intervals(day)
            instants = wall_clock_of_day(day, self.tz) if intervals else None
            for opens, closes in intervals:
                opens_at = wall_time_boundary(day, opens, self.tz)
                closes_at = wall_time_boundary(day, closes, self.tz)
                wall, wall_close = datetime.combine(day, opens), datetime.combine(day, closes)
                while wall < wall_close:
                    for start in instants(wall):
                        if (
                            opens_at <= start
                            and start + self.duration <= closes_at
                            and self.window_start <= start < self.window_end
                        ):
                            yield start
                    wall += self.step
            day += timedelta(days=1)

    def is_free(self, resource: Resource, start: datetime) -> bool:
        return self._hours[resource.pk].is_free(
            start - self.buffer_before, start + self.duration + self.buffer_after
        )

    def slots(self) -> list[Slot]:
        if self.window_end <= self.window_start:
            return []
        free: dict[datetime, list[uuid.UUID]] = defaultdict(list)
        for resource in self.resources:
            for start in set(self.candidate_starts(resource)):
                if self.is_free(resource, start):
                    free[start].append(resource.pk)
        return [
            Slot(start=start, end=start + self.duration, resource_ids=tuple(free[start]))
            for start in sorted(free)
        ]


def booking_window_limits(
    *, appointment_type: AppointmentType, now: datetime
) -> tuple[datetime, datetime]:
    """(earliest, latest) start the type accepts now: min notice and max days ahead."""
    earliest = now + timedelta(minutes=appointment_type.min_notice_minutes)
    latest = now + timedelta(days=appointment_type.max_days_ahead)
    return earliest, latest


def slots_compute(
    *,
    organization,
    appointment_type: AppointmentType,
    start: datetime,
    end: datetime,
    resource: Resource | None = None,
    now: datetime | None = None,
) -> list[Slot]:
    """Free starts in [start, end) for `appointment_type` (optionally on one `resource`).

    Honours hours, date exceptions, buffers, the grid, min notice and max days ahead.
    Read-only; a fixed number of queries whatever the range (see module docstring).
    Raises Unprocessable `appointment_type_inactive`, or `resource_not_eligible` when
    `resource` is inactive or does not offer the type.
    """
    if not appointment_type.is_active:
        raise errors.appointment_type_inactive(appointment_type)
    now = now or timezone.now()
    earliest, latest = booking_window_limits(appointment_type=appointment_type, now=now)
    availability = Availability(
        organization=organization,
        appointment_type=appointment_type,
        window_start=max(start, earliest),
        window_end=min(end, latest + timedelta(microseconds=1)),
        resource=resource,
    )
    if resource is not None and not availability.resources:
        raise errors.resource_not_eligible(resource, appointment_type)
    return availability.slots()
