# The `datrix-spark` image the jobs role and Spark's executors run (base/spark.yaml): this
# repository's image plus a Java runtime for pyspark 4 (Java 17 or 21) and a passwd entry
# for the uid the pods run as (Spark's Hadoop login looks the user up). NOT built or run
# in this project's CI (no Docker engine there); from the repository root:
#   docker build -t datrix .
#   docker build -t datrix-spark -f deploy/k8s/spark.Dockerfile --build-arg JRE=openjdk-17-jre-headless .
# JRE: the package of the base image's Debian release (bookworm: openjdk-17-jre-headless,
# trixie: openjdk-21-jre-headless).
ARG BASE=datrix
FROM ${BASE}
ARG JRE=openjdk-17-jre-headless
RUN apt-get update \
    && apt-get install -y --no-install-recommends ${JRE} procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /tmp --no-create-home datrix
USER 10001
