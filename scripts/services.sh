#!/usr/bin/env bash
# Makes sure RabbitMQ (5672) and Redis (6379) listen on 127.0.0.1, starting them when
# they do not: from installed packages first, else with `docker compose` where an
# engine runs. Fails loudly (exit 1) when a service cannot be reached: tests that
# need a service never skip.
set -euo pipefail

AMQP_PORT="${DEPLOY_GATE_TEST_AMQP_PORT:-5672}"
REDIS_PORT="${DEPLOY_GATE_TEST_REDIS_PORT:-6379}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name="$1" port="$2" deadline=$((SECONDS + ${3:-90}))
  until listening "$port"; do
    if (( SECONDS >= deadline )); then
      echo "services: $name is not listening on 127.0.0.1:$port after waiting; tests need it" >&2
      return 1
    fi
    sleep 1
  done
}

have_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

start_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting redis-server on $REDIS_PORT" >&2
    mkdir -p "${TMPDIR:-/tmp}/deploy-gate-redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "${TMPDIR:-/tmp}/deploy-gate-redis" --logfile "${TMPDIR:-/tmp}/deploy-gate-redis/redis.log"
  elif have_engine; then
    docker compose -f "$ROOT/docker-compose.yml" up -d redis
  else
    echo "services: Redis is not running and neither redis-server nor a Docker engine is available (apt-get install redis-server)" >&2
    return 1
  fi
}

start_rabbitmq() {
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "services: starting rabbitmq-server" >&2
    rabbitmq-server -detached
  elif have_engine; then
    docker compose -f "$ROOT/docker-compose.yml" up -d rabbitmq
  else
    echo "services: RabbitMQ is not running and neither rabbitmq-server nor a Docker engine is available (apt-get install rabbitmq-server)" >&2
    return 1
  fi
}

# Test tools from Debian's packages, installed here when missing: headless Chromium
# and chromedriver (the status page's end-to-end test drives them) and Prometheus
# (the canary judge's Prometheus source is tested against the real server; the
# package's own service is not started: the test runs its own). Under CI a failed
# install fails the run; elsewhere the test that needs the tool fails and says why.
have_tools() {
  command -v "${DEPLOY_GATE_TEST_CHROMIUM:-chromium}" >/dev/null 2>&1 &&
    command -v "${DEPLOY_GATE_TEST_CHROMEDRIVER:-chromedriver}" >/dev/null 2>&1 &&
    command -v "${DEPLOY_GATE_PROMETHEUS_BIN:-prometheus}" >/dev/null 2>&1
}

install_tools() {
  local sudo=()
  if (( $(id -u) != 0 )); then
    command -v sudo >/dev/null 2>&1 || return 1
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  local packages=(chromium chromium-driver prometheus)
  echo "services: installing ${packages[*]} (the status page and canary tests use them)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's own services stopped: tests start what they need.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [[ ! -e $policy ]] && (( $(id -u) == 0 )); then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  local status=0
  "${sudo[@]}" apt-get install -y "${packages[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "${packages[@]}" >&2; } ||
    status=$?
  [[ -n $made_policy ]] && rm -f "$policy"
  return "$status"
}

if ! have_tools; then
  if ! { install_tools && have_tools; }; then
    if [[ "${CI:-}" == "true" ]]; then
      echo "services: chromium, chromedriver or prometheus is missing and could not be installed (apt-get install chromium chromium-driver prometheus); the status page and canary tests need them" >&2
      exit 1
    fi
    echo "services: warning: chromium, chromedriver or prometheus is missing and could not be installed; the dashboard and canary Prometheus tests will fail (apt-get install chromium chromium-driver prometheus)" >&2
  fi
fi

listening "$REDIS_PORT" || start_redis
listening "$AMQP_PORT" || start_rabbitmq
wait_for Redis "$REDIS_PORT" 30
wait_for RabbitMQ "$AMQP_PORT" 120
echo "services: RabbitMQ on 127.0.0.1:$AMQP_PORT and Redis on 127.0.0.1:$REDIS_PORT are up" >&2
