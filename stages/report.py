"""Stage report: reports/report.md from the metrics and figures of every track."""

from pipeline.figures.report import build_report
from pipeline.flows.caching import atomic_write_text

if __name__ == "__main__":
    atomic_write_text("reports/report.md", build_report("reports"))
