"""Times exchangelib's own parsing of a GetUserAvailability response.

    peer_parse_exchangelib.py RESPONSE.xml MAILBOXES EVENTS_PER_MAILBOX

What is timed, per run: ``GetUserAvailability.parse(xml_bytes)`` consumed to
the end, i.e. exchangelib's path for a response it received: ``DummyResponse``
around the bytes (as ``parse`` does), ``_get_soap_parts`` (lxml parse of the
whole document with exchangelib's forgiving parser), ``_get_soap_messages``
(the FreeBusyResponse elements), ``_get_elements_in_response`` (each
ResponseMessage checked for errors, its FreeBusyView found) and
``_elems_to_objs`` -> ``FreeBusyView.from_xml`` per mailbox (CalendarEvent
objects with EWSDateTime start/end in the given time zone, busy types,
CalendarEventDetails, WorkingHours). No network: the service object gets a
stand-in protocol, which ``parse`` never uses. Before timing, the result is
checked (mailbox and event counts, every event has start, end and details).
Prints a ``RESULT`` line with the median and minimum in microseconds.
"""

import statistics
import sys
import time
import types

import exchangelib
from exchangelib import EWSTimeZone
from exchangelib.services import GetUserAvailability

WARM_UP = 3
ITERATIONS = 15


def parse(service, xml):
    return list(service.parse(xml))


def main():
    path, mailboxes, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as f:
        xml = f.read()
    service = GetUserAvailability(protocol=types.SimpleNamespace(version=None))
    service.tzinfo = EWSTimeZone("UTC")

    views = parse(service, xml)
    assert len(views) == mailboxes, f"{len(views)} views, expected {mailboxes}"
    for view in views:
        assert not isinstance(view, Exception), view
        assert view.view_type == "Detailed", view.view_type
        assert len(view.calendar_events) == events, len(view.calendar_events)
        for event in view.calendar_events:
            assert event.start is not None and event.end > event.start
            assert event.details is not None and event.details.subject

    for _ in range(WARM_UP):
        parse(service, xml)
    samples = []
    for _ in range(ITERATIONS):
        started = time.perf_counter()
        parse(service, xml)
        samples.append(time.perf_counter() - started)
    print(
        f"exchangelib {exchangelib.__version__} (Python {sys.version.split()[0]}): "
        f"{WARM_UP} warm-up runs, {ITERATIONS} timed runs"
    )
    print(
        f"RESULT exchangelib_median_us={statistics.median(samples) * 1e6:.0f} "
        f"exchangelib_min_us={min(samples) * 1e6:.0f}"
    )


if __name__ == "__main__":
    main()
