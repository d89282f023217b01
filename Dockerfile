# The Datrix image used by deploy/compose.yaml (worker; the CLI is inside too).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY aggregates ./aggregates
COPY streams ./streams
COPY projections ./projections
COPY jobs ./jobs
COPY gateway ./gateway
COPY connectors ./connectors
RUN pip install --no-cache-dir .
ENV DATRIX_HOME=/var/lib/datrix
ENTRYPOINT []
CMD ["datrix", "worker"]
