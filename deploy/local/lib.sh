# shellcheck shell=bash disable=SC2034  # (several variables here are used only by up/down/status)
# Shared helpers for deploy/local/{up,down,status,kafka-class}. Sourced, not run.
#
# Everything the scripts print for humans goes to STDERR; only `up` writes to
# STDOUT (the `export ...` lines), so `eval "$(deploy/local/up)"` works.

DATRIX_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---- locations and ports (all overridable from the environment) ------------
DATRIX_CACHE="${DATRIX_CACHE:-$HOME/.cache/datrix}"
DATRIX_STATE="${DATRIX_STATE:-$HOME/.cache/datrix/state}"

DATRIX_KAFKA_VERSION="${DATRIX_KAFKA_VERSION:-4.3.1}"
DATRIX_KAFKA_PORT="${DATRIX_KAFKA_PORT:-19092}"
DATRIX_KAFKA_CONTROLLER_PORT="${DATRIX_KAFKA_CONTROLLER_PORT:-19093}"
DATRIX_KAFKA_HEAP="${DATRIX_KAFKA_HEAP:-512m}"
DATRIX_PG_PORT="${DATRIX_PG_PORT:-15432}"
DATRIX_REDIS_PORT="${DATRIX_REDIS_PORT:-16379}"
DATRIX_S3_PORT="${DATRIX_S3_PORT:-19000}"
DATRIX_S3PROXY_VERSION="${DATRIX_S3PROXY_VERSION:-4.1.0}"
DATRIX_S3PROXY_HEAP="${DATRIX_S3PROXY_HEAP:-256m}"
DATRIX_CONNECT_PORT="${DATRIX_CONNECT_PORT:-18083}"
DATRIX_CONNECT_HEAP="${DATRIX_CONNECT_HEAP:-512m}"
DATRIX_DEBEZIUM_VERSION="${DATRIX_DEBEZIUM_VERSION:-3.6.1.Final}"
# Apicurio Registry: 3.0.9 is the newest version Maven Central serves whole that runs on
# Java 17 (3.3.x is built for Java 21, which Debian 12 does not package).
DATRIX_REGISTRY_PORT="${DATRIX_REGISTRY_PORT:-18081}"
DATRIX_APICURIO_VERSION="${DATRIX_APICURIO_VERSION:-3.0.9}"
DATRIX_REGISTRY_HEAP="${DATRIX_REGISTRY_HEAP:-256m}"
# Spark standalone (`up spark`): a master and DATRIX_SPARK_WORKERS workers from pyspark's own
# distribution (the venv's pyspark: the same Spark as the driver's), on loopback.
DATRIX_SPARK_PORT="${DATRIX_SPARK_PORT:-17077}"
DATRIX_SPARK_WEBUI_PORT="${DATRIX_SPARK_WEBUI_PORT:-18088}"  # the workers' UIs: the next ports
DATRIX_SPARK_WORKERS="${DATRIX_SPARK_WORKERS:-2}"
DATRIX_SPARK_WORKER_CORES="${DATRIX_SPARK_WORKER_CORES:-1}"
DATRIX_SPARK_WORKER_MEMORY="${DATRIX_SPARK_WORKER_MEMORY:-1g}"
# The cores the master gives an application that does not set spark.cores.max (its
# spark.deploy.defaultCores); empty: all it can get. The test tier sets 1 (with 2 cores a
# worker) so that every test process's session and a CLI scan beside it each get a core.
DATRIX_SPARK_APP_CORES="${DATRIX_SPARK_APP_CORES:-}"
DATRIX_SPARK_DAEMON_HEAP="${DATRIX_SPARK_DAEMON_HEAP:-256m}"
# The Python whose pyspark runs the cluster (and whose interpreter the executors use).
DATRIX_PYTHON="${DATRIX_PYTHON:-$(cd "$DATRIX_LOCAL_DIR/../.." && pwd)/.venv/bin/python}"
DATRIX_START_TIMEOUT="${DATRIX_START_TIMEOUT:-180}"
# PostgreSQL is durable by default (fsync, synchronous_commit, full_page_writes on);
# DATRIX_LOCAL_FAST=1 turns the three off: a throwaway test database, never for data you keep.
DATRIX_LOCAL_FAST="${DATRIX_LOCAL_FAST:-0}"

KAFKA_LIBS="$DATRIX_CACHE/kafka/$DATRIX_KAFKA_VERSION/libs"
KAFKA_STATE="$DATRIX_STATE/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
KAFKA_LOGDIR="$KAFKA_STATE/logs"
PG_STATE="$DATRIX_STATE/postgres"
PG_DATA="$PG_STATE/data"
PG_LOG="$PG_STATE/postgres.log"
REDIS_STATE="$DATRIX_STATE/redis"
REDIS_PIDFILE="$REDIS_STATE/redis.pid"
S3PROXY_LIBS="$DATRIX_CACHE/s3proxy/$DATRIX_S3PROXY_VERSION"
S3PROXY_JAR="$S3PROXY_LIBS/s3proxy-$DATRIX_S3PROXY_VERSION-jar-with-dependencies.jar"
S3_STATE="$DATRIX_STATE/s3proxy"
S3_DATA="$S3_STATE/data"
S3_PIDFILE="$S3_STATE/s3proxy.pid"
# Kafka Connect (distributed worker): its plugin path (connect-file of this Kafka version,
# Debezium's PostgreSQL connector) is cached beside the Kafka jars.
CONNECT_PLUGINS="$DATRIX_CACHE/connect/kafka-$DATRIX_KAFKA_VERSION-debezium-$DATRIX_DEBEZIUM_VERSION/plugins"
CONNECT_STATE="$DATRIX_STATE/connect"
CONNECT_PIDFILE="$CONNECT_STATE/connect.pid"
CONNECT_LOGDIR="$CONNECT_STATE/logs"
# Apicurio Registry (schema registry; Confluent-compatible API under /apis/ccompat/v7): the
# unpacked Quarkus application in the cache, its H2 database in the state (durable: a
# schema id is never handed out twice, as records on the topics keep theirs).
REGISTRY_APP="$DATRIX_CACHE/apicurio/$DATRIX_APICURIO_VERSION"
REGISTRY_STATE="$DATRIX_STATE/registry"
REGISTRY_DATA="$REGISTRY_STATE/data"
REGISTRY_PIDFILE="$REGISTRY_STATE/registry.pid"
REGISTRY_LOG="$REGISTRY_STATE/registry.log"
# Spark standalone: the master's and each worker's pid file, log and (workers) work dir.
SPARK_STATE="${DATRIX_SPARK_STATE:-$DATRIX_STATE/spark}"  # DATRIX_SPARK_STATE: a cluster of its own beside a shared stack
# The connector classes `up` waits for in GET /connector-plugins.
CONNECT_REQUIRED_PLUGINS=(org.apache.kafka.connect.file.FileStreamSourceConnector io.debezium.connector.postgresql.PostgresConnector)
# Fixed local keys and bucket of the S3-API server (loopback only, like the others).
S3_ACCESS_KEY="datrix"
S3_SECRET_KEY="datrix-local-secret"
S3_BUCKET="datrix"

# What `up` and `status` do with no names (and `all`); `down` with no names also stops s3.
ALL_SERVICES=(kafka postgres redis connect)

# ---- output ------------------------------------------------------------------
log()  { printf '[datrix-local] %s\n' "$*" >&2; }
warn() { printf '[datrix-local] WARNING: %s\n' "$*" >&2; }
die()  { printf '[datrix-local] ERROR: %s\n' "$*" >&2; exit 1; }

# Parse service names from "$@" into the global array SERVICES (default: all).
parse_services() {
  SERVICES=()
  local s
  for s in "$@"; do
    case "$s" in
      kafka|postgres|redis|s3) SERVICES+=("$s") ;;
      pg|postgresql) SERVICES+=(postgres) ;;
      s3proxy) SERVICES+=(s3) ;;
      connect|kafka-connect) SERVICES+=(connect) ;;
      registry|apicurio|schema-registry) SERVICES+=(registry) ;;
      spark) SERVICES+=(spark) ;;
      all) SERVICES=("${ALL_SERVICES[@]}") ;;
      -*) ;; # flags are handled by the caller
      *) die "unknown service '$s' (expected: kafka postgres redis connect s3 registry spark)" ;;
    esac
  done
  if [ "${#SERVICES[@]}" -eq 0 ]; then SERVICES=("${ALL_SERVICES[@]}"); fi
}

# Private state (issue 12): the services' folders hold the events, datasets and keys
# (s3proxy.conf has the secret key). Everything `up` and the servers it starts create
# from here on is the owner's alone (umask 077: folders 0700, files 0600, inherited by
# Kafka, Redis and S3Proxy), and the folders of an existing state are closed to others.
# DATRIX_STATE itself keeps others' x bit when root runs PostgreSQL (the postgres user
# must traverse it: pg_make_reachable), never r or w; each service's folder is 0700
# (PostgreSQL's own data dir is 0700 already: initdb insists).
private_state() {
  umask 077
  mkdir -p "$DATRIX_STATE"
  if [ "$(id -u)" -eq 0 ]; then chmod go-rw "$DATRIX_STATE"; else chmod 700 "$DATRIX_STATE"; fi
  local d
  for d in "$KAFKA_STATE" "$PG_STATE" "$REDIS_STATE" "$S3_STATE" "$CONNECT_STATE" "$REGISTRY_STATE" "$SPARK_STATE"; do
    if [ -d "$d" ]; then chmod 700 "$d"; fi
  done
}

# One `up`/`down` at a time per state dir (two shells racing to format Kafka
# storage or initdb would corrupt it). Daemons must be started with 9>&- so
# they do not inherit (and hold forever) the lock.
take_lock() {
  mkdir -p "$DATRIX_STATE"
  exec 9>"$DATRIX_STATE/.lock"
  local wait="${DATRIX_LOCK_WAIT_S:-300}"
  if ! flock -n 9; then
    log "another deploy/local up/down holds $DATRIX_STATE/.lock; waiting (max $wait s)"
    flock -w "$wait" 9 || die "timed out waiting for $DATRIX_STATE/.lock (DATRIX_LOCK_WAIT_S=$wait)"
  fi
}

# ---- generic probes ------------------------------------------------------------
# True when something accepts TCP connections on 127.0.0.1:$1 (no external tools).
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True when $1 is a live pid whose command line contains $2.
pid_matches() {
  local pid="$1" pattern="$2"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

read_pidfile() { if [ -s "$1" ]; then tr -dc '0-9' <"$1"; fi; }

# Install Debian packages when a command is missing. Runs `apt-get update` once.
APT_UPDATED=0
apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install $*"
    sudo=(sudo -n)
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    (umask 022 && "${sudo[@]}" apt-get update -q >&2) || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  # packages are installed for everyone: not under the private umask of `up`
  local mask; mask="$(umask)"
  umask 022
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
  umask "$mask"
}

# ---- Kafka -------------------------------------------------------------------------
kafka_pid() {
  local pid
  pid="$(read_pidfile "$KAFKA_PIDFILE")"
  if pid_matches "$pid" 'kafka.Kafka'; then echo "$pid"; fi
}

kafka_libs_ready() { [ -f "$KAFKA_LIBS/.complete" ]; }

# ---- Kafka security (docs/security.md "Who can produce") ---------------------------
# The client port accepts only SASL/SCRAM-SHA-512 clients and authorizes them with
# Kafka's StandardAuthorizer. Principals: the broker's own (a super user), the workers',
# the gateway/CLI's, and one per external producer (deploy/local/kafka-user). Their
# passwords are random, made once per DATRIX_STATE and kept in $KAFKA_SECRETS (0600).
KAFKA_MECHANISM="SCRAM-SHA-512"
KAFKA_ADMIN_USER="datrix-admin"
KAFKA_WORKER_USER="datrix-worker"
KAFKA_APP_USER="datrix-app"
# Kafka Connect's worker (and the connectors' producers and consumers it runs); its ACLs
# are made by `up connect` (connect_secure), not with the trusted principals'.
KAFKA_CONNECT_USER="datrix-connect"
KAFKA_SECRETS="$KAFKA_STATE/secrets"
KAFKA_ADMIN_PROPS="$KAFKA_STATE/admin.properties"
# Written once the broker of this state has its principals and ACLs; its content is the
# version of that set-up (a new one re-applies the ACLs on the next up).
KAFKA_SECURED="$KAFKA_STATE/secured"
KAFKA_SECURITY_VERSION="sasl-scram-acl-1"

# The kafka folder of the state whose broker serves 127.0.0.1:$DATRIX_KAFKA_PORT, found
# through the running broker's own server.properties (readable when the same user started
# it from another DATRIX_STATE, e.g. a CI run with a HOME of its own); fails when none.
kafka_running_state() {
  local p props
  for p in /proc/[0-9]*; do
    pid_matches "${p#/proc/}" 'kafka.Kafka' || continue
    props="$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null | tail -n 1)"
    [ -r "$props" ] || continue
    if grep -q "^listeners=.*://127.0.0.1:$DATRIX_KAFKA_PORT," "$props"; then
      dirname "$props"
      return 0
    fi
  done
  return 1
}

# Take the principals of the kafka state folder $1 (another DATRIX_STATE's broker, reused).
kafka_adopt_state() {
  KAFKA_SECRETS="$1/secrets"
  KAFKA_ADMIN_PROPS="$1/admin.properties"
  KAFKA_SECURED="$1/secured"
}

# The password of principal $1, made (random, 32 hex digits) the first time.
kafka_secret() {
  local name="$1" pw
  mkdir -p "$KAFKA_STATE"
  touch "$KAFKA_SECRETS"; chmod 600 "$KAFKA_SECRETS"
  pw="$(awk -F= -v n="$name" '$1 == n {print $2}' "$KAFKA_SECRETS" | tail -n 1)"
  if [ -z "$pw" ]; then
    pw="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$name=$pw" >>"$KAFKA_SECRETS"
  fi
  echo "$pw"
}

# The broker's own principal: PLAIN, its password in server.properties (see up).
kafka_admin_jaas() {
  local pw; pw="$(kafka_secret "$KAFKA_ADMIN_USER")"
  printf 'org.apache.kafka.common.security.plain.PlainLoginModule required username="%s" password="%s" user_%s="%s";' \
    "$KAFKA_ADMIN_USER" "$pw" "$KAFKA_ADMIN_USER" "$pw"
}

# The client configuration of the admin principal, for the Kafka CLI tools.
kafka_admin_props() {
  mkdir -p "$KAFKA_STATE"
  touch "$KAFKA_ADMIN_PROPS"; chmod 600 "$KAFKA_ADMIN_PROPS"
  cat >"$KAFKA_ADMIN_PROPS" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=$(kafka_admin_jaas)
EOF
}

# The exports a client of principal $1 needs.
kafka_exports() {
  echo "export DATRIX_KAFKA_SASL_USERNAME=$1"
  echo "export DATRIX_KAFKA_SASL_PASSWORD=$(kafka_secret "$1")"
  echo "export DATRIX_KAFKA_SASL_MECHANISM=$KAFKA_MECHANISM"
}

# Send TERM, wait up to $3 seconds, then KILL.
stop_pid() {
  local pid="$1" name="$2" wait_s="$3" deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + wait_s))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      warn "$name (pid $pid) still running after ${wait_s}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
}

# Run a Kafka main class (CLI tool) with the cached classpath; see ./kafka-class.
kafka_class() { "$DATRIX_LOCAL_DIR/kafka-class" "$@"; }

# ---- PostgreSQL -------------------------------------------------------------------
# Newest /usr/lib/postgresql/<ver>/bin that has pg_ctl and initdb (empty if none).
pg_bindir() {
  local d best="" bestv=0 v
  for d in /usr/lib/postgresql/*/bin; do
    if [ ! -x "$d/pg_ctl" ] || [ ! -x "$d/initdb" ]; then continue; fi
    v="$(basename "$(dirname "$d")")"
    v="${v%%.*}"
    if [ "$v" -gt "$bestv" ] 2>/dev/null; then best="$d"; bestv="$v"; fi
  done
  echo "$best"
}

# Run a command as the PostgreSQL OS user (root can't run postgres); as self otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The crash-safety settings `up` writes into datrix.conf: on by default, off only with
# DATRIX_LOCAL_FAST=1 (anything but 0/1/empty is refused rather than guessed).
pg_durability_conf() {
  case "$DATRIX_LOCAL_FAST" in
    ""|0)
      printf '%s\n' "# Durable (the default): a commit survives a crash of PostgreSQL or the machine." \
        "fsync = on" "synchronous_commit = on" "full_page_writes = on" ;;
    1)
      printf '%s\n' "# DATRIX_LOCAL_FAST=1: a disposable test database, crash safety traded for speed." \
        "fsync = off" "synchronous_commit = off" "full_page_writes = off" ;;
    *) die "DATRIX_LOCAL_FAST must be 1 (fast, not crash-safe PostgreSQL) or 0/unset (durable), got '$DATRIX_LOCAL_FAST'" ;;
  esac
}

pg_running() {
  local bin
  bin="$(pg_bindir)"
  [ -n "$bin" ] && [ -f "$PG_DATA/PG_VERSION" ] || return 1
  as_pg "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# ---- Redis -------------------------------------------------------------------------
redis_ping() {
  command -v redis-cli >/dev/null 2>&1 || return 1
  [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$DATRIX_REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

# ---- S3 (S3Proxy, filesystem backend) ----------------------------------------------
s3_pid() {
  local pid
  pid="$(read_pidfile "$S3_PIDFILE")"
  if pid_matches "$pid" 'org.gaul.s3proxy\|s3proxy-'; then echo "$pid"; fi
}

# True when an S3-API server answers on the port (S3Proxy answers an anonymous GET / with
# an S3 XML error, 403).
s3_answers() {
  command -v curl >/dev/null 2>&1 || return 1
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$DATRIX_S3_PORT/" 2>/dev/null)" || return 1
  [ "$code" = "403" ] || [ "$code" = "200" ]
}

# ---- Kafka Connect -------------------------------------------------------------------
connect_pid() {
  local pid
  pid="$(read_pidfile "$CONNECT_PIDFILE")"
  if pid_matches "$pid" 'org.apache.kafka.connect.cli.ConnectDistributed'; then echo "$pid"; fi
}

connect_plugins_ready() { [ -f "$CONNECT_PLUGINS/.complete" ]; }

# GET $1 of the Connect REST API on this state's port (body on stdout; fails unless 2xx).
connect_get() {
  command -v curl >/dev/null 2>&1 || return 1
  curl -fsS --max-time 5 "http://127.0.0.1:$DATRIX_CONNECT_PORT$1" 2>/dev/null
}

# True when the worker answers and lists every connector class `up` provides.
connect_ready() {
  local plugins c
  plugins="$(connect_get /connector-plugins)" || return 1
  for c in "${CONNECT_REQUIRED_PLUGINS[@]}"; do
    case "$plugins" in *"\"$c\""*) ;; *) return 1 ;; esac
  done
}

# ---- Schema registry (Apicurio Registry) --------------------------------------------
registry_pid() {
  local pid
  pid="$(read_pidfile "$REGISTRY_PIDFILE")"
  if pid_matches "$pid" 'apicurio'; then echo "$pid"; fi
}

registry_app_ready() { [ -f "$REGISTRY_APP/.complete" ]; }

# The URL clients use: the Confluent-compatible API (DATRIX_SCHEMA_REGISTRY_URL).
registry_url() { echo "http://127.0.0.1:$DATRIX_REGISTRY_PORT/apis/ccompat/v7"; }

# True when a Confluent-compatible registry answers on the port (GET .../subjects: a JSON
# list, 200); Apicurio answers it only once its storage is ready.
registry_answers() {
  command -v curl >/dev/null 2>&1 || return 1
  local body
  body="$(curl -fsS --max-time 3 "$(registry_url)/subjects" 2>/dev/null)" || return 1
  case "$body" in "["*) return 0 ;; *) return 1 ;; esac
}

# True when Apicurio reports itself ready (Quarkus /health/ready: storage included).
registry_ready() {
  command -v curl >/dev/null 2>&1 || return 1
  curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:$DATRIX_REGISTRY_PORT/health/ready" 2>/dev/null \
    && registry_answers
}

# ---- Spark standalone (master + workers from pyspark's distribution) ------------------
spark_url() { echo "spark://127.0.0.1:$DATRIX_SPARK_PORT"; }

# The pyspark folder of $DATRIX_PYTHON (its bin/spark-class runs the daemons).
spark_home() {
  [ -x "$DATRIX_PYTHON" ] || die "no Python at $DATRIX_PYTHON for Spark (set DATRIX_PYTHON to the venv's python; scripts/bootstrap makes .venv)"
  "$DATRIX_PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null \
    || die "$DATRIX_PYTHON has no pyspark (scripts/bootstrap installs it)"
}

# The pid of the master (name "master") or of worker N (name "worker-N") of this state.
spark_pid() {
  local pid class=org.apache.spark.deploy.master.Master
  case "$1" in worker-*) class=org.apache.spark.deploy.worker.Worker ;; esac
  pid="$(read_pidfile "$SPARK_STATE/$1.pid")"
  if pid_matches "$pid" "$class"; then echo "$pid"; fi
}

# GET $1 of the master's web UI (its JSON at /json/: workers, apps); fails unless 2xx.
spark_get() {
  command -v curl >/dev/null 2>&1 || return 1
  curl -fsS --max-time 5 "http://127.0.0.1:$DATRIX_SPARK_WEBUI_PORT$1" 2>/dev/null
}

# The number of ALIVE workers the master reports (0 when it does not answer).
spark_alive_workers() {
  local body
  body="$(spark_get /json/)" || { echo 0; return 0; }
  "$DATRIX_PYTHON" -c 'import json, sys; print(sum(w.get("state") == "ALIVE" for w in json.load(sys.stdin).get("workers", [])))' <<<"$body" 2>/dev/null || echo 0
}
