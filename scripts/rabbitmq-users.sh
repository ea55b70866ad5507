#!/usr/bin/env bash
# Creates deploy-gate's least-privilege RabbitMQ users, one per role, with the
# exact permissions README "Security" documents.
#
#   GATE_ADMIN_PASSWORD=… GATE_PRODUCER_PASSWORD=… GATE_WORKER_PASSWORD=… \
#   GATE_NOTIFIER_PASSWORD=… GATE_ORCHESTRATOR_PASSWORD=… \
#     scripts/rabbitmq-users.sh [--vhost VHOST] [--prefix PREFIX] [--user-prefix UP]
#
#   --vhost        the virtual host (default /); created when missing
#   --prefix       the topology's name prefix, as in Topology::with_prefix (default
#                  none: gate.events, gate.merge-events, …)
#   --user-prefix  put in front of every user name (default none: gate-producer, …)
#   RABBITMQCTL    the rabbitmqctl command (default rabbitmqctl; in compose:
#                  "docker compose exec -T rabbitmq rabbitmqctl")
#
# Users (run each role with its own, and with bus.declare_topology = false except
# for the admin, which declares the topology once):
#   gate-admin         declares the topology (configure/write/read on gate.*)
#   gate-producer      enqueue, webhook: publishes to gate.events, nothing else
#   gate-worker        consumes gate.merge-events and gate.outcomes; publishes to
#                      gate.results and gate.dead-letter
#   gate-notifier      consumes gate.notifications; publishes to gate.dead-letter
#   gate-orchestrator  wait, watch, approve, outcome: its own exclusive server-named
#                      queues (amq.gen-*) bound to gate.results, reads
#                      gate.decisions.log, publishes to gate.results
# Running it again updates passwords and permissions.
set -euo pipefail

vhost=/
prefix=
user_prefix=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --vhost) vhost=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --user-prefix) user_prefix=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "rabbitmq-users.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
read -r -a ctl <<< "${RABBITMQCTL:-rabbitmqctl}"

# The prefix as a regex literal.
p=$(printf '%s' "$prefix" | sed 's/[].[\\*^$()+?{}|]/\\&/g')
g="${p}gate\\."

"${ctl[@]}" list_vhosts --quiet | grep -qxF -- "$vhost" || "${ctl[@]}" add_vhost "$vhost"

# user  password-variable  configure  write  read (regexes contain no spaces)
roles=(
  "gate-admin GATE_ADMIN_PASSWORD ^${g}.* ^${g}.* ^${g}.*"
  "gate-producer GATE_PRODUCER_PASSWORD ^\$ ^${g}events\$ ^\$"
  "gate-worker GATE_WORKER_PASSWORD ^\$ ^${g}(results|dead-letter)\$ ^${g}(merge-events|outcomes)\$"
  "gate-notifier GATE_NOTIFIER_PASSWORD ^\$ ^${g}dead-letter\$ ^${g}notifications\$"
  "gate-orchestrator GATE_ORCHESTRATOR_PASSWORD ^amq\\.gen-.* ^(amq\\.gen-.*|${g}results)\$ ^(amq\\.gen-.*|${g}results|${g}decisions\\.log)\$"
)

for role in "${roles[@]}"; do
  read -r name variable configure write read <<< "$role"
  user="${user_prefix}${name}"
  password=${!variable:-}
  if [[ -z "$password" ]]; then
    echo "rabbitmq-users.sh: $variable is not set (the password of $user)" >&2
    exit 2
  fi
  if "${ctl[@]}" list_users --quiet | cut -f1 | grep -qxF -- "$user"; then
    "${ctl[@]}" change_password "$user" "$password" >/dev/null
  else
    "${ctl[@]}" add_user "$user" "$password" >/dev/null
  fi
  "${ctl[@]}" set_permissions -p "$vhost" "$user" "$configure" "$write" "$read" >/dev/null
  echo "$user: configure '$configure' write '$write' read '$read' on $vhost"
done
