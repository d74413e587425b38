"""One thin module per DVC stage: read params, run its flow, write its outs.

Stages are entry points (``python -m stages.<name>``), so importing this package sets up the
environment of the run before Prefect is imported: telemetry off, repo-local Prefect home and
result storage, and the shared local server when ``make repro`` started one.
"""

from pipeline.flows.settings import configure_environment

configure_environment()
