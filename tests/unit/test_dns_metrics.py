"""DNS metrics: every series exists from start, values add up across servers, promtool finds nothing to fix."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from meshd.dns.metrics import QTYPES, RCODES, UDP, DnsCollector, DnsStats, stat_index
from meshd.metrics import REGISTRY


def exposition(*stats: DnsStats) -> str:
    collector = DnsCollector()
    for s in stats:
        collector.stats.add(s)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_every_series_exists_from_start() -> None:
    text = exposition(DnsStats())
    for qtype in QTYPES:
        for rcode in RCODES:
            for transport in ("udp", "tcp"):
                line = (
                    f'meshd_dns_queries_total{{qtype="{qtype}",rcode="{rcode}",transport="{transport}"}} 0.0'
                )
                assert line in text
    assert "meshd_dns_answer_duration_seconds_count 0.0" in text
    assert "meshd_dns_cache_entries 0.0" in text


def test_counts_and_durations_add_up() -> None:
    a, b = DnsStats(lambda: 3), DnsStats(lambda: 4)
    a.queries[stat_index(33, 3, UDP)] += 2
    b.queries[stat_index(33, 3, UDP)] += 1
    a.observe(20_000)  # 20 µs
    b.observe(2_000_000_000)  # beyond every bucket
    text = exposition(a, b)
    assert 'meshd_dns_queries_total{qtype="SRV",rcode="NXDOMAIN",transport="udp"} 3.0' in text
    assert 'meshd_dns_answer_duration_seconds_bucket{le="2.5e-05"} 1.0' in text
    assert 'meshd_dns_answer_duration_seconds_bucket{le="+Inf"} 2.0' in text
    assert "meshd_dns_answer_duration_seconds_count 2.0" in text
    assert "meshd_dns_cache_entries 7.0" in text


def test_the_agent_registry_has_the_dns_metrics() -> None:
    stats = DnsStats()
    stats.queries[stat_index(1, 0, UDP)] += 1
    assert "meshd_dns_queries_total" in generate_latest(REGISTRY).decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_check_metrics_is_clean() -> None:
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        check=False,
        input=exposition(DnsStats()),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
