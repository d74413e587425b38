"""Stage report: reports/report.md from the metrics and figures of every track, and the headline
numbers that `dvc metrics show` prints (reports/metrics/headline.json)."""

import json

from pipeline.figures.report import build_report, headline
from pipeline.flows.caching import atomic_write_text

if __name__ == "__main__":
    atomic_write_text("reports/report.md", build_report("reports"))
    atomic_write_text("reports/metrics/headline.json", json.dumps(headline("reports"), indent=1, sort_keys=True))
