#!/usr/bin/env bash
# Install, configure, start and stop a private ActiveMQ Classic broker for osago.
#
#   scripts/activemq.sh install   # Debian's activemq package (idempotent)
#   scripts/activemq.sh start     # configure $BASE, start the JVM in the background, wait for STOMP
#   scripts/activemq.sh stop      # SIGTERM, wait for a clean KahaDB shutdown
#   scripts/activemq.sh kill      # SIGKILL, as a crash (the chaos tests; KahaDB recovers)
#   scripts/activemq.sh status    # exit 0 when STOMP answers
#   scripts/activemq.sh up        # install + start (what the test command uses)
#
# Master/slave on a shared store (as ActiveMQ users run HA): two instances, each with its own
# OSAGO_ACTIVEMQ_BASE and ports, and one OSAGO_ACTIVEMQ_DATA; the second waits for the store's
# lock (start it with OSAGO_ACTIVEMQ_WAIT=0) and opens its ports when the master dies.
#
# Why not /usr/bin/activemq or the init script: they override the environment, sleep a fixed
# 5 s, drop output, and `stop` SIGKILLs (see shared/reference/services.md). We run the JVM
# ourselves with our own base directory so nothing outside $BASE is touched.
set -euo pipefail

BASE=${OSAGO_ACTIVEMQ_BASE:-/var/tmp/osago-activemq}
STOMP_PORT=${OSAGO_ACTIVEMQ_STOMP_PORT:-61613}
OPENWIRE_PORT=${OSAGO_ACTIVEMQ_OPENWIRE_PORT:-61616}
# Redelivery: a NACKed message comes back after these delays, then goes to DLQ.<queue>.
# The redelivery plugin refuses delays of 1000 ms or less.
MAX_REDELIVERIES=${OSAGO_ACTIVEMQ_MAX_REDELIVERIES:-2}
INITIAL_DELAY_MS=${OSAGO_ACTIVEMQ_INITIAL_REDELIVERY_DELAY_MS:-1100}
DELAY_MS=${OSAGO_ACTIVEMQ_REDELIVERY_DELAY_MS:-1100}
# The message store and scheduler: shared by a master/slave pair, else under $BASE.
DATA=${OSAGO_ACTIVEMQ_DATA:-$BASE/data}
WAIT=${OSAGO_ACTIVEMQ_WAIT:-60}  # seconds start waits for STOMP; 0: do not wait (a slave)
HOME_DIR=/usr/share/activemq
PIDFILE=$BASE/activemq.pid

log() { echo "activemq.sh: $*" >&2; }

stomp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$STOMP_PORT") 2>/dev/null; }

install() {
  if [[ -f $HOME_DIR/bin/activemq.jar && -f /usr/share/java/xstream.jar && -f /usr/share/java/jettison.jar ]]; then
    return 0
  fi
  log "installing Debian's activemq package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends activemq libxstream-java libjettison-java >/dev/null
}

configure() {
  mkdir -p "$BASE/conf" "$BASE/data/tmp" "$BASE/lib" "$DATA"
  # Statistics replies need xstream + jettison on the broker classpath ($BASE/lib).
  ln -sf /usr/share/java/xstream.jar "$BASE/lib/xstream.jar"
  ln -sf /usr/share/java/jettison.jar "$BASE/lib/jettison.jar"
  cat >"$BASE/conf/log4j.properties" <<LOG
log4j.rootLogger=WARN, logfile
log4j.logger.org.apache.activemq=INFO
log4j.appender.logfile=org.apache.log4j.FileAppender
log4j.appender.logfile.file=$BASE/data/activemq.log
log4j.appender.logfile.layout=org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
LOG
  cat >"$BASE/conf/activemq.xml" <<XML
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- useJmx=false: JMX would bind every interface. schedulerSupport: the redelivery plugin needs it.
       offlineDurableSubscriber*: a notifier's durable results subscription outlives its
       reconnects; one whose notifier died (never came back for 10 minutes) is removed. -->
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="osago" persistent="true"
          schedulerSupport="true" useJmx="false" dataDirectory="$DATA"
          offlineDurableSubscriberTimeout="600000" offlineDurableSubscriberTaskSchedule="60000">
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <!-- Each queue gets its own dead-letter queue, DLQ.<queue>. A backlog pages to the
               store (storeCursor) past memoryLimit, and producers are slowed (flow control)
               rather than the broker running out of heap. -->
          <policyEntry queue="&gt;" producerFlowControl="true" memoryLimit="64mb">
            <pendingQueuePolicy><storeCursor/></pendingQueuePolicy>
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
            </deadLetterStrategy>
          </policyEntry>
          <policyEntry topic="&gt;" producerFlowControl="true" memoryLimit="32mb"/>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <plugins>
      <statisticsBrokerPlugin/>
      <redeliveryPlugin fallbackToDeadLetter="true" sendToDlqIfMaxRetriesExceeded="true">
        <redeliveryPolicyMap>
          <redeliveryPolicyMap>
            <defaultEntry>
              <redeliveryPolicy maximumRedeliveries="$MAX_REDELIVERIES"
                                initialRedeliveryDelay="$INITIAL_DELAY_MS" redeliveryDelay="$DELAY_MS"/>
            </defaultEntry>
          </redeliveryPolicyMap>
        </redeliveryPolicyMap>
      </redeliveryPlugin>
    </plugins>
    <persistenceAdapter>
      <!-- The lock is what makes a second broker on the same directory a slave: it retries
           every second and takes over (opening its connectors) when the master dies. -->
      <kahaDB directory="$DATA/kahadb">
        <locker><shared-file-locker lockAcquireSleepInterval="1000"/></locker>
      </kahaDB>
    </persistenceAdapter>
    <!-- Deliberate limits (issue 11: -Xmx256m and no limits ran out of heap under a backlog of
         about 100 000 messages): messages in memory take at most 60 % of the 512 MB heap;
         the store and temp files are bounded on disk; past a limit producers wait. -->
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage percentOfJvmHeap="60"/></memoryUsage>
        <storeUsage><storeUsage limit="8 gb"/></storeUsage>
        <tempUsage><tempUsage limit="2 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:$OPENWIRE_PORT"/>
      <!-- tcpNoDelay: without it p99 latency shows 40 ms Nagle spikes. -->
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$STOMP_PORT?transport.tcpNoDelay=true"/>
    </transportConnectors>
  </broker>
</beans>
XML
}

running_pid() {
  [[ -f $PIDFILE ]] || return 1
  local pid; pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if stomp_open; then
    # Running: keep it, unless it runs an older configuration than this script writes.
    local before; before=$(cat "$BASE/conf/activemq.xml" 2>/dev/null || true)
    configure
    if [[ $before == "$(cat "$BASE/conf/activemq.xml")" ]] || ! running_pid >/dev/null; then
      log "STOMP already answers on 127.0.0.1:$STOMP_PORT"; return 0
    fi
    log "configuration changed: restarting"; stop
  fi
  configure
  local java; java=$(command -v java)
  nohup "$java" -Xms128m -Xmx512m \
    -Dactivemq.home=$HOME_DIR -Dactivemq.base="$BASE" -Dactivemq.conf="$BASE/conf" \
    -Dactivemq.data="$BASE/data" -Dactivemq.classpath="$BASE/conf" \
    -Dlog4j.configuration="file:$BASE/conf/log4j.properties" \
    -Djava.io.tmpdir="$BASE/data/tmp" \
    -jar $HOME_DIR/bin/activemq.jar start "xbean:file:$BASE/conf/activemq.xml" \
    >"$BASE/data/console.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local pid=$! deadline=$((SECONDS + WAIT))
  if ((WAIT == 0)); then log "started (pid $pid) without waiting for STOMP, base $BASE"; return 0; fi
  while ! stomp_open; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the broker JVM exited; its output:"; tail -40 "$BASE/data/console.log" >&2; return 1
    fi
    if ((SECONDS > deadline)); then log "STOMP did not open within $WAIT s"; return 1; fi
    sleep 0.2
  done
  log "started (pid $pid), STOMP on 127.0.0.1:$STOMP_PORT, base $BASE"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || { log "stopped"; rm -f "$PIDFILE"; return 0; }; sleep 0.1; done
  log "no clean stop within 15 s; killing"; kill -KILL "$pid" || true; rm -f "$PIDFILE"
}

crash() {
  local pid
  if ! pid=$(running_pid); then log "not running"; return 0; fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$PIDFILE"; log "killed (pid $pid)"
}

case ${1:-} in
  install) install ;;
  configure) configure ;;
  start) start ;;
  up) install; start ;;
  stop) stop ;;
  kill) crash ;;
  restart) stop; start ;;
  status) stomp_open ;;
  *) echo "usage: $0 install|start|up|stop|kill|restart|status" >&2; exit 2 ;;
esac
