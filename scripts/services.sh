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

listening "$REDIS_PORT" || start_redis
listening "$AMQP_PORT" || start_rabbitmq
wait_for Redis "$REDIS_PORT" 30
wait_for RabbitMQ "$AMQP_PORT" 120
echo "services: RabbitMQ on 127.0.0.1:$AMQP_PORT and Redis on 127.0.0.1:$REDIS_PORT are up" >&2
