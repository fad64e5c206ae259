#!/usr/bin/env bash
# Apache Kafka's own command-line tools, from the jars `stack.sh` resolves (the broker's version),
# with a quiet log4j configuration and the bootstrap server filled in.
#
# Usage: kafka-tool.sh TOOL [ARGS…]
#   console-consumer   read a topic            (kafka-console-consumer.sh)
#   console-producer   write to a topic        (kafka-console-producer.sh)
#   consumer-groups    groups, offsets and lag (kafka-consumer-groups.sh)
#   topics             list, describe, create  (kafka-topics.sh)
#   get-offsets        a topic's offsets       (kafka-get-offsets.sh)
#   configs            topic or broker configs (kafka-configs.sh)
#   class NAME         any other tool by its main class
# The bootstrap server is $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:$KAFKA_PORT (9092); a
# --bootstrap-server among ARGS wins. The jars are those of $HELPDESK_STACK_DIR (default .stack/),
# resolved from Maven Central on first use. On a secured cluster, pass the tool's own client
# properties file (--command-config, or --consumer.config / --producer.config).
# Examples (README, "Kafka's own tools"):
#   deploy/local/kafka-tool.sh topics --list
#   deploy/local/kafka-tool.sh console-consumer --topic helpdesk.complaints.rejected.v1 --from-beginning \
#     --property print.key=true --max-messages 10
#   deploy/local/kafka-tool.sh consumer-groups --describe --group helpdesk-sla.helpdesk.case-activity.v1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${HELPDESK_STACK_DIR:-$ROOT/.stack}"
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}"

usage() { sed -n '5,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

tool="${1:-}"; [ -n "$tool" ] || { usage >&2; exit 2; }; shift
case "$tool" in
  console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  console-producer) main=kafka.tools.ConsoleProducer ;;
  consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  topics) main=org.apache.kafka.tools.TopicCommand ;;
  get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
  configs) main=kafka.admin.ConfigCommand ;;
  class) [ $# -ge 1 ] || { usage >&2; exit 2; }; main="$1"; shift ;;
  -h|--help|help) usage; exit 0 ;;
  *) echo "kafka-tool.sh: unknown tool '$tool'" >&2; usage >&2; exit 2 ;;
esac

bash "$ROOT/deploy/local/stack.sh" kafka-jars  # resolves the jars (tools included) when missing

args=("$@")
has_bootstrap=0
for arg in "${args[@]}"; do
  case "$arg" in --bootstrap-server|--bootstrap-server=*|--help|-h|--version) has_bootstrap=1 ;; esac
done
[ "$has_bootstrap" = 1 ] || args=(--bootstrap-server "$BOOTSTRAP" "${args[@]}")

exec java -Xms64m -Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j.configuration="file:$ROOT/deploy/local/kafka/tools-log4j.properties" \
  -cp "$STATE/kafka-libs/*" "$main" "${args[@]}"
