package filter

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/knaight/knaight/shared/decision"
)

// Metric names. Envoy shows proxy-wasm metrics in /stats and
// /stats/prometheus with a "wasmcustom." prefix, for example
// wasmcustom.knaight.decisions.deny.token_missing.
const (
	metricDecisionsPrefix = "knaight.decisions."
	metricSnapshotVersion = "knaight.snapshot.version"
	metricSnapshotAge     = "knaight.snapshot.age_seconds"
	metricSnapshotRejects = "knaight.snapshot.rejected"
	metricPollErrors      = "knaight.snapshot.poll_errors"
	metricQueueDepth      = "knaight.queue.depth"
	metricQueueDropped    = "knaight.queue.dropped"
	metricFlushErrors     = "knaight.queue.flush_errors"
)

// metrics holds the VM's metric handles. Counters of decisions are defined
// per (result, reason) at start, from the closed list of reasons, so the
// request path only looks one up.
type metrics struct {
	decisions       map[decision.Reason]proxywasm.MetricCounter
	snapshotVersion proxywasm.MetricGauge
	snapshotAge     proxywasm.MetricGauge
	snapshotRejects proxywasm.MetricCounter
	pollErrors      proxywasm.MetricCounter
	queueDepth      proxywasm.MetricGauge
	queueDropped    proxywasm.MetricCounter
	flushErrors     proxywasm.MetricCounter
}

func newMetrics() *metrics {
	m := &metrics{
		decisions:       make(map[decision.Reason]proxywasm.MetricCounter),
		snapshotVersion: proxywasm.DefineGaugeMetric(metricSnapshotVersion),
		snapshotAge:     proxywasm.DefineGaugeMetric(metricSnapshotAge),
		snapshotRejects: proxywasm.DefineCounterMetric(metricSnapshotRejects),
		pollErrors:      proxywasm.DefineCounterMetric(metricPollErrors),
		queueDepth:      proxywasm.DefineGaugeMetric(metricQueueDepth),
		queueDropped:    proxywasm.DefineCounterMetric(metricQueueDropped),
		flushErrors:     proxywasm.DefineCounterMetric(metricFlushErrors),
	}
	for _, r := range decision.Reasons() {
		m.decisions[r] = proxywasm.DefineCounterMetric(decisionMetric(r))
	}
	return m
}

// decisionMetric is the counter name of decisions with reason r.
func decisionMetric(r decision.Reason) string {
	result := "deny."
	if r == decision.Allowed {
		result = "allow."
	}
	return metricDecisionsPrefix + result + string(r)
}

func (m *metrics) countDecision(r decision.Reason) {
	if c, ok := m.decisions[r]; ok {
		c.Increment(1)
	}
}

// metricSet sets a gauge, which the ABI can only move by an offset. Only
// the poller sets gauges, so no other VM moves them in between.
func metricSet(g proxywasm.MetricGauge, v int64) {
	g.Add(v - g.Value())
}
