"""`make demo` end to end: a real broker, the daemon, the bundled NAB series, anomalies printed."""

from __future__ import annotations

import re

import pytest

from rnnstream import demo


@pytest.mark.kafka
def test_demo_replays_the_bundled_series_and_reports_anomalies(capsys):
    assert demo.main(["--rate", "50000"]) == 0
    out = capsys.readouterr().out
    summary = re.search(r"replayed (\d+) events .*: (\d+) anomalies, (\d+) inside labelled windows, "
                        r"(\d+) of (\d+) labelled windows detected", out)
    assert summary, out[-2000:]
    events, anomalies, inside, hit, windows = map(int, summary.groups())
    assert events == sum(len(v) for v, _ in demo.load_series()[0].values())
    assert anomalies == out.count("  ANOMALY ")   # every anomaly event reached the printer
    assert windows == 15 and hit >= 5              # real incidents are found, not just noise
    assert "metrics: http://127.0.0.1:" in out and "stopped: daemon, Kafka and temporary state" in out
