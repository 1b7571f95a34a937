# Sourced by the benchmark scripts that run on the Kafka-protocol cluster of the production engines.
# start_fresh_cluster: stops and removes an earlier benchmark cluster, starts a fresh one (kfake) on
# KAFKACLICKS_KAFKA_PORTS (dev.sh's test cluster ports by default), exports BENCH_KAFKA (its bootstrap list) and
# BENCH_KAFKA_PIDFILE, and stops it and removes its data when the calling script exits.
start_fresh_cluster() {
  local root services data
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  services="${KAFKACLICKS_SERVICES:?run it through infra/dev.sh bench, which names the production engines}"
  data="$root/.local/kafka-bench"
  local ports="${KAFKACLICKS_KAFKA_PORTS:-39092,39093,39094}" port
  "$services/kafka/stop-cluster.sh" "$data" >/dev/null 2>&1 || true
  rm -rf "$data"
  # Another cluster on these ports (the test lane's, which `infra/dev.sh test cluster` leaves running) would answer in
  # place of the fresh one, which could not bind them and ended.
  for port in ${ports//,/ }; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use (another Kafka cluster? 'infra/dev.sh down' stops the test lane's); set KAFKACLICKS_KAFKA_PORTS to free ones" >&2
      exit 1
    fi
  done
  BENCH_KAFKA=$("$services/kafka/start-cluster.sh" "$data" "$ports")
  BENCH_KAFKA_PIDFILE="$data/kfake.pid"
  export BENCH_KAFKA BENCH_KAFKA_PIDFILE
  # shellcheck disable=SC2064 # the paths are fixed now, while they are in scope
  trap "$(printf '%q' "$services/kafka/stop-cluster.sh") $(printf '%q' "$data") >/dev/null 2>&1 || true; rm -rf $(printf '%q' "$data")" EXIT
}
