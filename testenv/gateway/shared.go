package gateway

import (
	"bytes"
	"maps"
	"sync"
)

// sharedData is proxy-wasm shared data, one store per proxy (vm_id) that
// every VM reads and writes, with the semantics of proxy-wasm-cpp-host's
// SharedData, which Envoy uses:
//
//   - a key never written reads NotFound; there is no delete;
//   - every successful write gives the key a new CAS value from one
//     counter common to all keys, which starts at 1 and skips 0;
//   - a write with CAS 0 is unconditional; a write with any other CAS
//     fails with CasMismatch unless it equals the key's current CAS;
//   - the CAS of a write that creates a key is not checked.
//
// The filter relies on the last two: it creates its replay slots before
// requests race on them (replay.go).
type sharedData struct {
	mu      sync.Mutex
	values  map[string]sharedValue
	lastCAS uint32
}

type sharedValue struct {
	data []byte
	cas  uint32
}

func (s *sharedData) init() { s.values = map[string]sharedValue{} }

// get returns a copy of key's value and its CAS.
func (s *sharedData) get(key string) ([]byte, uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	if !ok {
		return nil, 0, false
	}
	return bytes.Clone(v.data), v.cas, true
}

// set writes key; data must not be retained by the caller.
func (s *sharedData) set(key string, data []byte, cas uint32) status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.values[key]; ok && cas != 0 && cas != cur.cas {
		return statusCasMismatch
	}
	s.lastCAS++
	if s.lastCAS == 0 {
		s.lastCAS++
	}
	s.values[key] = sharedValue{data: data, cas: s.lastCAS}
	return statusOK
}

// sharedQueues are proxy-wasm shared queues, with proxy-wasm-cpp-host's
// semantics: a queue is named by (vm_id, name); registering an existing
// name returns its token and makes the registering root context the one
// notified (the last registration wins); every enqueue posts one
// proxy_on_queue_ready to that context's VM, delivered after the current
// call returns; dequeue answers Empty on an empty queue and NotFound for an
// unknown token.
type sharedQueues struct {
	mu     sync.Mutex
	tokens map[[2]string]uint32
	queues map[uint32]*sharedQueue
	last   uint32
}

type sharedQueue struct {
	items [][]byte
	// owner and ownerCtx receive the notifications.
	owner    *vm
	ownerCtx uint32
}

func (q *sharedQueues) init() {
	q.tokens = map[[2]string]uint32{}
	q.queues = map[uint32]*sharedQueue{}
}

func (q *sharedQueues) register(vmID, name string, owner *vm, ownerCtx uint32) uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := [2]string{vmID, name}
	token, ok := q.tokens[key]
	if !ok {
		q.last++
		token = q.last
		q.tokens[key] = token
		q.queues[token] = &sharedQueue{}
	}
	q.queues[token].owner, q.queues[token].ownerCtx = owner, ownerCtx
	return token
}

func (q *sharedQueues) resolve(vmID, name string) (uint32, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	token, ok := q.tokens[[2]string{vmID, name}]
	return token, ok
}

// enqueue appends data (not retained by the caller) and notifies the
// queue's owner through its loop.
func (q *sharedQueues) enqueue(token uint32, data []byte) status {
	q.mu.Lock()
	sq, ok := q.queues[token]
	if !ok {
		q.mu.Unlock()
		return statusNotFound
	}
	sq.items = append(sq.items, data)
	owner, ctxID := sq.owner, sq.ownerCtx
	q.mu.Unlock()
	owner.post(func() {
		owner.invoke(exportQueueReady, ctxID, uint64(ctxID), uint64(token))
	})
	return statusOK
}

func (q *sharedQueues) dequeue(token uint32) ([]byte, status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	sq, ok := q.queues[token]
	if !ok {
		return nil, statusNotFound
	}
	if len(sq.items) == 0 {
		return nil, statusEmpty
	}
	data := sq.items[0]
	sq.items[0] = nil
	sq.items = sq.items[1:]
	return data, statusOK
}

// Metric types of proxy_define_metric.
const (
	metricCounter   = 0
	metricGauge     = 1
	metricHistogram = 2
)

// metricStore holds the proxy's metrics. As Envoy keeps one stat per name
// in its scope, a name defined by several VMs is one metric: each VM gets
// its own id for it (vm.metricIDs), all pointing here.
type metricStore struct {
	mu     sync.Mutex
	byName map[string]*metric
}

type metric struct {
	name  string
	kind  uint32
	value int64 // guarded by metricStore.mu
}

func (s *metricStore) init() { s.byName = map[string]*metric{} }

// define returns the metric of name, creating it; nil when name exists
// with another type.
func (s *metricStore) define(name string, kind uint32) *metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byName[name]
	if !ok {
		m = &metric{name: name, kind: kind}
		s.byName[name] = m
	}
	if m.kind != kind {
		return nil
	}
	return m
}

// increment adds offset: counters only go up, gauges both ways.
func (s *metricStore) increment(m *metric, offset int64) status {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case m.kind == metricCounter && offset >= 0, m.kind == metricGauge:
		m.value += offset
		return statusOK
	}
	return statusBadArgument
}

// record is Envoy's record_metric: it adds to a counter, sets a gauge and
// records a histogram sample (kept as the last value).
func (s *metricStore) record(m *metric, value uint64) status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.kind == metricCounter {
		m.value += int64(value)
	} else {
		m.value = int64(value)
	}
	return statusOK
}

func (s *metricStore) get(m *metric) (int64, status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.kind == metricHistogram {
		return 0, statusBadArgument
	}
	return m.value, statusOK
}

func (s *metricStore) snapshot() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.byName))
	for name, m := range maps.All(s.byName) {
		out[name] = m.value
	}
	return out
}
