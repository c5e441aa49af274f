"""DNS metrics: plain integers on the hot path, exported by one Collector at scrape time.

meshd_dns_queries_total{qtype,rcode,transport}   answered queries (bounded label sets, every series from start)
meshd_dns_dropped_total{transport}               packets not answered (no header, or a response)
meshd_dns_truncated_total                        UDP answers sent with TC set
meshd_dns_answer_duration_seconds                time from packet in to answer out (histogram; over UDP a sample:
                                                 the first datagram of each socket wake-up, so every one when idle)
meshd_dns_cache_entries                          encoded answers held
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

QTYPES = ("A", "AAAA", "SRV", "SOA", "NS", "PTR", "TXT", "ANY", "OTHER")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER")
TRANSPORTS = ("udp", "tcp")
UDP, TCP = 0, 1
_QTYPE_INDEX = {1: 0, 28: 1, 33: 2, 6: 3, 2: 4, 12: 5, 16: 6, 255: 7}
BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0)
_BOUNDS_NS = tuple(int(b * 1e9) for b in BUCKETS)


def stat_index(qtype: int, rcode: int, transport: int) -> int:
    """The slot of (qtype, rcode, transport) in `DnsStats.queries`."""
    qt = _QTYPE_INDEX.get(qtype, len(QTYPES) - 1)
    rc = rcode if 0 <= rcode < len(RCODES) - 1 else len(RCODES) - 1
    return (qt * len(RCODES) + rc) * len(TRANSPORTS) + transport


class DnsStats:
    """Counters of one DNS server; `count`/`observe` cost a list increment each."""

    def __init__(self, cache_entries: Callable[[], int] = lambda: 0) -> None:
        self.queries = [0] * (len(QTYPES) * len(RCODES) * len(TRANSPORTS))
        self.dropped = [0, 0]
        self.truncated = 0
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last slot is +Inf only
        self.duration_sum_ns = 0
        self.cache_entries = cache_entries
        _collector().stats.add(self)

    def observe(self, nanoseconds: int) -> None:
        self.buckets[bisect.bisect_left(_BOUNDS_NS, nanoseconds)] += 1
        self.duration_sum_ns += nanoseconds


class DnsCollector(Collector):
    """Sums the stats of every live DnsServer in the process (tests run several)."""

    def __init__(self) -> None:
        self.stats: weakref.WeakSet[DnsStats] = weakref.WeakSet()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        all_stats = list(self.stats)
        queries = CounterMetricFamily(
            "meshd_dns_queries", "DNS queries answered.", labels=["qtype", "rcode", "transport"]
        )
        for qt, qtype in enumerate(QTYPES):
            for rc, rcode in enumerate(RCODES):
                for tr, transport in enumerate(TRANSPORTS):
                    i = (qt * len(RCODES) + rc) * len(TRANSPORTS) + tr
                    queries.add_metric([qtype, rcode, transport], sum(s.queries[i] for s in all_stats))
        yield queries
        dropped = CounterMetricFamily(
            "meshd_dns_dropped", "DNS packets dropped unanswered.", labels=["transport"]
        )
        for tr, transport in enumerate(TRANSPORTS):
            dropped.add_metric([transport], sum(s.dropped[tr] for s in all_stats))
        yield dropped
        yield CounterMetricFamily(
            "meshd_dns_truncated",
            "UDP DNS answers sent truncated (TC).",
            value=sum(s.truncated for s in all_stats),
        )
        cumulative, running = [], 0
        for i, bound in enumerate(BUCKETS):
            running += sum(s.buckets[i] for s in all_stats)
            cumulative.append((repr(bound), running))
        running += sum(s.buckets[-1] for s in all_stats)
        cumulative.append(("+Inf", running))
        yield HistogramMetricFamily(
            "meshd_dns_answer_duration_seconds",
            "Time from a DNS query's arrival to its answer being sent (UDP: first query of each socket wake-up).",
            buckets=cumulative,
            sum_value=sum(s.duration_sum_ns for s in all_stats) / 1e9,
        )
        yield GaugeMetricFamily(
            "meshd_dns_cache_entries",
            "Encoded DNS answers cached.",
            value=sum(s.cache_entries() for s in all_stats),
        )


_COLLECTOR: DnsCollector | None = None


def _collector() -> DnsCollector:
    global _COLLECTOR
    if _COLLECTOR is None:
        _COLLECTOR = DnsCollector()
        _registry().register(_COLLECTOR)
    return _COLLECTOR


def _registry() -> CollectorRegistry:
    from meshd.metrics import REGISTRY

    return REGISTRY
