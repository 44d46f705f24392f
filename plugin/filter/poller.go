package filter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/snapshot"
)

// One VM per proxy polls the manager and flushes decision records: the
// poller. With Envoy's singleton bootstrap service configured (Config.Service)
// that is the service VM; otherwise (an Istio WasmPlugin has no singleton)
// the root contexts of the worker VMs elect one through a lease in shared
// data, renewed on every tick with compare-and-swap. A service VM takes the
// lease from a worker; a worker takes it only once it has expired, so when
// the poller's VM dies another takes over within leaseDuration.
const (
	tickPeriod      = 100 * time.Millisecond
	leaseDuration   = 2 * time.Second
	maxBackoff      = 30 * time.Second
	firstBackoff    = 500 * time.Millisecond
	pollTimeoutPad  = 10 * time.Second
	flushTimeout    = 10 * time.Second
	flushBatch      = 500
	snapshotPath    = "/api/v1/gateway/snapshot"
	decisionsPath   = "/api/v1/gateway/decisions"
	leaseValueBytes = 16 + 8 + 1
)

// poller is the state of the poller role in one root context. Only the
// context holding the lease polls and drains the queue; any context still
// holding records flushes them.
type poller struct {
	owner  [16]byte
	leader bool

	polling     bool
	nextPoll    time.Time
	pollBackoff time.Duration

	buffer       [][]byte // encoded decision records, oldest first
	inFlight     int      // records of buffer in the batch being sent
	flushing     bool
	nextFlush    time.Time
	flushBackoff time.Duration
	// dropped counts the records that did not fit in buffer since the last
	// gap record the manager acknowledged, made between droppedFrom and
	// droppedTo; flushGap is the part of it in the batch in flight.
	dropped                uint64
	droppedFrom, droppedTo time.Time
	flushGap               uint64
}

func newPoller() *poller {
	var p poller
	readRandom(p.owner[:])
	return &p
}

// backoff doubles d within [firstBackoff, maxBackoff].
func backoff(d time.Duration) time.Duration {
	if d <= 0 {
		return firstBackoff
	}
	return min(2*d, maxBackoff)
}

// onTick runs the poller role: renew or take the lease, then poll, drain
// and flush as due. The queue is drained here rather than on every
// queue-ready notification: that bounds the delay of a record to one tick
// and keeps the per-request cost at one enqueue.
func (p *pluginContext) onTick(now time.Time) {
	p.poller.leader = p.holdLease(now)
	if p.poller.leader {
		p.drainQueue(now)
		if !p.poller.polling && !now.Before(p.poller.nextPoll) {
			p.poll(now)
		}
		if h, ok := p.readHead(); ok {
			metricSet(p.metrics.snapshotAge, int64(now.Sub(h.confirmed)/time.Second))
		}
		metricSet(p.metrics.queueDepth, int64(len(p.poller.buffer)))
	}
	if !p.poller.flushing && (len(p.poller.buffer) > 0 || p.poller.dropped > 0) && !now.Before(p.poller.nextFlush) {
		p.flush(now)
	}
}

// holdLease renews this context's lease or takes an expired one (a service
// context takes a worker's too) and reports whether it holds it.
func (p *pluginContext) holdLease(now time.Time) bool {
	data, cas, err := proxywasm.GetSharedData(p.keys.lease)
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		return false
	}
	if err == nil && len(data) == leaseValueBytes {
		owner := data[:16]
		expires := time.UnixMilli(int64(binary.BigEndian.Uint64(data[16:24])))
		service := data[24] == 1
		mine := bytes.Equal(owner, p.poller.owner[:])
		switch {
		case mine:
		case p.config.Service && !service:
		case now.Before(expires):
			return false
		}
	}
	value := make([]byte, 0, leaseValueBytes)
	value = append(value, p.poller.owner[:]...)
	value = binary.BigEndian.AppendUint64(value, uint64(now.Add(leaseDuration).UnixMilli()))
	if p.config.Service {
		value = append(value, 1)
	} else {
		value = append(value, 0)
	}
	return proxywasm.SetSharedData(p.keys.lease, value, cas) == nil
}

func (p *pluginContext) readHead() (head, bool) {
	data, _, err := proxywasm.GetSharedData(p.keys.head)
	if err != nil {
		return head{}, false
	}
	return decodeHead(data)
}

// setShared writes key with compare-and-swap against its current value, so
// that the write works on hosts that reject an unconditional write of an
// existing key.
func setShared(key string, value []byte) error {
	var err error
	for range 8 {
		var cas uint32
		if _, cas, err = proxywasm.GetSharedData(key); err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
			return err
		}
		if err = proxywasm.SetSharedData(key, value, cas); !errors.Is(err, types.ErrorStatusCasMismatch) {
			return err
		}
	}
	return err
}

// poll sends one snapshot long poll to the manager.
func (p *pluginContext) poll(now time.Time) {
	h, have := p.readHead()
	wait := p.config.PollWait
	if p.view != nil {
		wait = min(wait, p.view.staleness/3)
	}
	headers := [][2]string{
		{":method", "GET"},
		{":path", snapshotPath},
		{":authority", p.config.ManagerAuthority},
		{"authorization", "Bearer " + p.config.Credential.String()},
		{"accept", "application/json"},
	}
	if have {
		headers = append(headers,
			[2]string{"if-none-match", `"` + strconv.FormatUint(h.version, 10) + `"`},
			[2]string{"prefer", "wait=" + strconv.Itoa(int(wait/time.Second))})
	}
	timeout := uint32((wait + pollTimeoutPad) / time.Millisecond)
	_, err := proxywasm.DispatchHttpCall(p.config.ManagerCluster, headers, nil, nil, timeout, func(_, bodySize, _ int) {
		defer p.recoverCallback("snapshot poll response")
		p.poller.polling = false
		p.onSnapshotResponse(bodySize, time.Now())
	})
	if err != nil {
		proxywasm.LogErrorf("knaight: cannot poll the manager through cluster %q: %v", p.config.ManagerCluster, err)
		p.metrics.pollErrors.Increment(1)
		p.pollFailed(now)
		return
	}
	p.poller.polling = true
}

func (p *pluginContext) pollFailed(now time.Time) {
	p.poller.pollBackoff = backoff(p.poller.pollBackoff)
	p.poller.nextPoll = now.Add(p.poller.pollBackoff)
}

// onSnapshotResponse handles the manager's answer to a poll: a new
// snapshot is opened, verified and published; a 304 confirms the current
// one. Anything else keeps the current snapshot and backs off; the
// snapshot then ages until the staleness limit fails the filter closed.
func (p *pluginContext) onSnapshotResponse(bodySize int, now time.Time) {
	status := httpCallStatus()
	switch status {
	case 200:
		body, err := proxywasm.GetHttpCallResponseBody(0, bodySize)
		if err != nil {
			proxywasm.LogErrorf("knaight: cannot read the snapshot response: %v", err)
			p.pollFailed(now)
			return
		}
		opened, err := snapshot.Open(body, p.config.Credential, p.config.sealKey, p.config.SnapshotKeys)
		if err != nil {
			p.metrics.snapshotRejects.Increment(1)
			proxywasm.LogCriticalf("knaight: rejected a snapshot from the manager, keeping the current one: %v", err)
			p.pollFailed(now)
			return
		}
		s := opened.Snapshot
		if s.Organization != p.config.Organization || s.Environment != p.config.Environment {
			p.metrics.snapshotRejects.Increment(1)
			proxywasm.LogCriticalf("knaight: rejected a snapshot for %s/%s, this gateway enforces %s/%s",
				s.Organization, s.Environment, p.config.Organization, p.config.Environment)
			p.pollFailed(now)
			return
		}
		h, have := p.readHead()
		if !have || s.Version > h.version {
			if err := setShared(p.keys.snapshot, opened.Payload); err != nil {
				proxywasm.LogErrorf("knaight: cannot publish snapshot %d: %v", s.Version, err)
				p.pollFailed(now)
				return
			}
			h.version = s.Version
			proxywasm.LogInfof("knaight: enforcing snapshot %d (bundle %q revision %q, %d agents, %d revocations)",
				s.Version, s.Bundle.ID, s.Bundle.Revision, len(s.Agents), len(s.Revocations))
		}
		p.confirm(h.version, now)
	case 304:
		h, have := p.readHead()
		if !have {
			p.pollFailed(now)
			return
		}
		p.confirm(h.version, now)
	default:
		p.metrics.pollErrors.Increment(1)
		if status == 401 || status == 403 {
			proxywasm.LogCriticalf("knaight: the manager refused this gateway's credential (%d): check gatewayCredential", status)
		} else {
			proxywasm.LogWarnf("knaight: snapshot poll answered %d; retrying", status)
		}
		p.pollFailed(now)
	}
}

// confirm records that the manager vouched for version at now, and lets
// the next poll go out at once.
func (p *pluginContext) confirm(version uint64, now time.Time) {
	if err := setShared(p.keys.head, encodeHead(head{version: version, confirmed: now})); err != nil {
		proxywasm.LogErrorf("knaight: cannot publish the snapshot head: %v", err)
	}
	metricSet(p.metrics.snapshotVersion, int64(version))
	p.poller.pollBackoff = 0
	p.poller.nextPoll = now
}

// httpCallStatus returns the :status of the current HTTP call response, 0
// when there is none (the call failed or timed out).
func httpCallStatus() int {
	headers, err := proxywasm.GetHttpCallResponseHeaders()
	if err != nil {
		return 0
	}
	for _, h := range headers {
		if h[0] == ":status" {
			n, _ := strconv.Atoi(h[1])
			return n
		}
	}
	return 0
}

// drainQueue moves the records the HTTP contexts enqueued into the
// poller's bounded buffer. What does not fit is counted, to be reported as
// a gap record.
func (p *pluginContext) drainQueue(now time.Time) {
	for {
		data, err := proxywasm.DequeueSharedQueue(p.queueID)
		if err != nil {
			return // empty, or not found
		}
		if len(p.poller.buffer) >= p.config.QueueLimit {
			if p.poller.dropped == 0 {
				p.poller.droppedFrom = now
			}
			p.poller.dropped++
			p.poller.droppedTo = now
			p.metrics.queueDropped.Increment(1)
			continue
		}
		p.poller.buffer = append(p.poller.buffer, bytes.Clone(data))
	}
}

// flush sends the oldest buffered records, and a gap record when records
// were dropped, in one batch.
func (p *pluginContext) flush(now time.Time) {
	n := min(len(p.poller.buffer), flushBatch)
	body := make([]byte, 0, 256*(n+1))
	body = append(body, `{"records":[`...)
	for i, r := range p.poller.buffer[:n] {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, r...)
	}
	gap := p.poller.dropped
	if gap > 0 {
		if n > 0 {
			body = append(body, ',')
		}
		from, to := p.poller.droppedFrom.UTC(), p.poller.droppedTo.UTC()
		body = appendRecord(body, &decision.Record{
			ID: newDecisionID(), Kind: decision.KindGap, Time: now.UTC(),
			Organization: p.config.Organization, Environment: string(p.config.Environment),
			Lost: gap, LostFrom: &from, LostTo: &to,
		})
	}
	body = append(body, "]}"...)
	headers := [][2]string{
		{":method", "POST"},
		{":path", decisionsPath},
		{":authority", p.config.ManagerAuthority},
		{"authorization", "Bearer " + p.config.Credential.String()},
		{"content-type", "application/json"},
	}
	_, err := proxywasm.DispatchHttpCall(p.config.ManagerCluster, headers, body, nil, uint32(flushTimeout/time.Millisecond), func(_, _, _ int) {
		defer p.recoverCallback("decision flush response")
		p.onFlushResponse(time.Now())
	})
	if err != nil {
		proxywasm.LogErrorf("knaight: cannot send decisions through cluster %q: %v", p.config.ManagerCluster, err)
		p.flushFailed(now)
		return
	}
	p.poller.flushing, p.poller.inFlight, p.poller.flushGap = true, n, gap
}

func (p *pluginContext) flushFailed(now time.Time) {
	p.metrics.flushErrors.Increment(1)
	p.poller.flushBackoff = backoff(p.poller.flushBackoff)
	p.poller.nextFlush = now.Add(p.poller.flushBackoff)
}

// onFlushResponse drops the acknowledged records. The manager's ingest is
// idempotent on record ids, so a batch whose answer was lost is sent again
// without harm. A batch the manager refuses as invalid (4xx other than 401,
// 403, 408 and 429) would be refused forever: it is dropped and reported as
// a gap, so the loss is on the record.
func (p *pluginContext) onFlushResponse(now time.Time) {
	p.poller.flushing = false
	status := httpCallStatus()
	n, gap := p.poller.inFlight, p.poller.flushGap
	p.poller.inFlight, p.poller.flushGap = 0, 0
	switch {
	case status >= 200 && status < 300:
		p.poller.buffer = p.poller.buffer[n:]
		p.poller.dropped -= gap
		p.poller.flushBackoff = 0
		p.poller.nextFlush = now.Add(p.config.FlushInterval)
		if len(p.poller.buffer) >= flushBatch {
			p.poller.nextFlush = now // more to send: do not wait
		}
	case status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 && status != 429:
		proxywasm.LogErrorf("knaight: the manager refused a batch of %d decision records (%d); reporting them as lost", n, status)
		p.poller.buffer = p.poller.buffer[n:]
		if p.poller.dropped == 0 {
			p.poller.droppedFrom = now
		}
		p.poller.dropped += uint64(n)
		p.poller.droppedTo = now
		p.flushFailed(now)
	default:
		proxywasm.LogWarnf("knaight: sending decision records failed (status %d); retrying", status)
		p.flushFailed(now)
	}
}
