# The Datrix image used by deploy/compose.yaml (worker; the CLI is inside too).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY aggregates ./aggregates
COPY streams ./streams
COPY runtime ./runtime
COPY projections ./projections
COPY jobs ./jobs
COPY gateway ./gateway
COPY connectors ./connectors
COPY sdk ./sdk
COPY datrix ./datrix
# Extras, e.g. --build-arg DATRIX_EXTRAS=labels for `scan --label` (cleanlab, AGPL-3.0)
ARG DATRIX_EXTRAS=""
RUN pip install --no-cache-dir ".${DATRIX_EXTRAS:+[$DATRIX_EXTRAS]}"
ENV DATRIX_HOME=/var/lib/datrix
ENTRYPOINT []
CMD ["datrix", "worker"]
