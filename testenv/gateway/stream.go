package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// Actions the stream callbacks return. Any non-zero action pauses, as
// Envoy reads StopIteration and its variants.
const actionContinue = 0

// chunkSize is the largest body chunk handed to the plugin at once.
const chunkSize = 32 << 10

// errAbort means the stream is reset: the connection is dropped without a
// (further) response, as Envoy resets a stream.
var errAbort = errors.New("gateway: stream reset")

// localResponse is a response the plugin sent with proxy_send_local_response.
type localResponse struct {
	status  int
	details string
	headers headerMap
	body    []byte
}

// stream is the context of one HTTP stream in a worker VM. Its fields are
// guarded by the VM's mu.
type stream struct {
	v  *vm
	id uint32
	// maps holds the header maps by map type (request headers and
	// trailers, response headers and trailers) and body the body buffers by
	// buffer type (request, response); nil is not available (NotFound).
	maps  [4]*headerMap
	body  [2]*[]byte
	props map[string][]byte
	// What the plugin asked for, collected after each call (collect).
	local     *localResponse
	localSent bool
	resumed   [2]bool
	reset     bool
	// wake is signalled when the plugin resumes, answers, resets or fails
	// outside the stream's own callbacks (from an HTTP call's response).
	wake chan struct{}
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// outcome is what the plugin did in one callback.
type outcome struct {
	action  uint32
	local   *localResponse
	reset   bool
	failed  bool
	resumed bool
}

// proceed reports whether the stream goes on: no local response, no reset,
// no VM failure.
func (o outcome) proceed() bool { return o.local == nil && !o.reset && !o.failed }

// released reports whether the plugin let the stream's direction go on.
func (o outcome) released() bool { return o.action == actionContinue || o.resumed }

// stopError carries an outcome that ends the stream out of a body pump.
type stopError struct{ o outcome }

func (e *stopError) Error() string { return "gateway: the plugin stopped the stream" }

// call invokes a stream callback and collects the outcome. v.mu must be
// held.
func (s *stream) call(export string, dir int, args ...uint64) outcome {
	res, ok := s.v.invoke(export, s.id, append([]uint64{uint64(s.id)}, args...)...)
	o := s.collect(dir)
	o.action = uint32(res)
	o.failed = o.failed || !ok
	return o
}

// collect takes what the plugin asked for in direction dir. v.mu must be
// held.
func (s *stream) collect(dir int) outcome {
	o := outcome{local: s.local, reset: s.reset, resumed: s.resumed[dir], failed: s.v.failed != nil}
	if s.local != nil {
		s.local, s.localSent = nil, true
	}
	s.resumed[dir] = false
	return o
}

func flag(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// openStream creates the stream's context (proxy_on_context_create with
// the root context as parent); nil when the VM has failed.
func (v *vm) openStream(req headerMap) *stream {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failed != nil {
		return nil
	}
	s := &stream{v: v, id: v.newID(), props: map[string][]byte{}, wake: make(chan struct{}, 1)}
	s.maps[mapRequestHeaders] = &req
	v.streams[s.id] = s
	if _, ok := v.invoke(exportContextCreate, s.id, uint64(s.id), uint64(v.rootID)); !ok {
		delete(v.streams, s.id)
		return nil
	}
	v.served.Add(1)
	return s
}

// closeStream ends the stream's context as Envoy does: proxy_on_done,
// proxy_on_log (where the Go SDK calls OnHttpStreamDone), proxy_on_delete.
func (v *vm) closeStream(s *stream) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.invoke(exportOnDone, s.id, uint64(s.id))
	v.invoke(exportOnLog, s.id, uint64(s.id))
	v.invoke(exportOnDelete, s.id, uint64(s.id))
	delete(v.streams, s.id)
}

// ServeHTTP runs one request through the plugin as Envoy's filter chain
// does, on the next worker VM in turn (a stream stays on its VM):
//
//   - proxy_on_request_headers with the request's header map. A local
//     response ends the stream (it passes through the plugin's response
//     callbacks first, as Envoy's local replies do). Continue forwards the
//     request; Pause holds it while the body is read and buffered, each
//     chunk given to proxy_on_request_body with the size of everything
//     buffered so far, until the plugin continues (from a body callback or
//     with proxy_continue_stream). Headers the plugin changes while it
//     holds them still apply, as with Envoy's
//     allow_on_headers_stop_iteration.
//   - The request goes to Config.Upstream with the plugin's headers (Host
//     from :authority) and body; a body still arriving is streamed.
//   - proxy_on_response_headers, then the response body chunk by chunk
//     through proxy_on_response_body, each chunk written and flushed as
//     it arrives, so that Server-Sent Events stream through.
//   - The stream ends with proxy_on_done, proxy_on_log, proxy_on_delete.
//
// A request on a failed VM is answered 503 (Envoy's FAIL_CLOSED).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.enter() {
		http.Error(w, "gateway closed", http.StatusServiceUnavailable)
		return
	}
	defer g.inflight.Done()
	v := g.workers[(g.next.Add(1)-1)%uint64(len(g.workers))]
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	s := v.openStream(requestHeaders(r))
	if s == nil {
		failClosed(w)
		return
	}
	defer v.closeStream(s)
	x := &exchange{g: g, v: v, s: s, w: w, r: r, ctx: ctx}
	if err := x.run(); errors.Is(err, errAbort) {
		panic(http.ErrAbortHandler) // after closeStream, deferred
	}
}

// failClosed answers a request the plugin cannot judge.
func failClosed(w http.ResponseWriter) {
	http.Error(w, "wasm plugin unavailable: failing closed", http.StatusServiceUnavailable)
}

// exchange is one request on its way through the gateway.
type exchange struct {
	g            *Gateway
	v            *vm
	s            *stream
	w            http.ResponseWriter
	r            *http.Request
	ctx          context.Context
	wroteHeaders bool

	// bodyStop is an outcome that stopped the stream while the HTTP
	// transport was reading the request body, on its own goroutine.
	stopMu   sync.Mutex
	bodyStop *outcome
}

// run runs the request path; errAbort means reset the connection.
func (x *exchange) run() error {
	r := x.r
	eos := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	x.v.mu.Lock()
	o := x.s.call(exportRequestHeaders, dirRequest, uint64(len(*x.s.maps[mapRequestHeaders])), flag(eos))
	x.v.mu.Unlock()
	if !o.proceed() {
		return x.stop(o, true)
	}
	held := !o.released()
	var p *bodyPump
	var released []byte
	switch {
	case !eos:
		p = x.newPump(dirRequest, r.Body, func() http.Header { return r.Trailer })
		p.held = held
		for p.held && !p.done {
			out, err := p.step()
			if err != nil {
				return x.pumpFailed(err, true)
			}
			released = append(released, out...)
		}
	case held:
		o, err := x.await(dirRequest)
		if err != nil {
			return errAbort
		}
		if !o.proceed() {
			return x.stop(o, true)
		}
	}
	return x.forward(released, p)
}

// forward sends the request upstream and passes the response back.
func (x *exchange) forward(released []byte, p *bodyPump) error {
	x.v.mu.Lock()
	hm := slices.Clone(*x.s.maps[mapRequestHeaders])
	x.v.mu.Unlock()
	method, _ := hm.get(":method")
	path, _ := hm.get(":path")
	authority, _ := hm.get(":authority")
	var body io.Reader = http.NoBody
	length := int64(0)
	switch {
	case p == nil:
	case p.done:
		body, length = bytes.NewReader(released), int64(len(released))
	default:
		body, length = &upstreamBody{x: x, p: p, pending: released}, -1
	}
	req, err := http.NewRequestWithContext(x.ctx, method, x.g.upstream.String(), body)
	if err != nil {
		return x.respondLocal(&localResponse{status: http.StatusBadRequest, body: []byte("bad request: " + err.Error())}, true)
	}
	req.URL = targetURL(x.g.upstream, path)
	req.Host = authority
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	toHTTP(req.Header, hm, "content-length")
	if _, ok := hm.get("user-agent"); !ok {
		req.Header["User-Agent"] = []string{""} // Envoy adds none
	}
	resp, err := x.g.client.Do(req)
	if err != nil {
		if o := x.takeBodyStop(); o != nil {
			return x.stop(*o, true)
		}
		if x.ctx.Err() != nil {
			return errAbort
		}
		return x.respondLocal(&localResponse{status: http.StatusServiceUnavailable,
			body: []byte("upstream connect error or disconnect/reset before headers. reset reason: " + err.Error())}, true)
	}
	defer resp.Body.Close()
	if err := x.response(resp); err != nil {
		return err
	}
	if o := x.takeBodyStop(); o != nil {
		return x.stop(*o, false)
	}
	return nil
}

// response passes the upstream's response through the plugin to the
// client.
func (x *exchange) response(resp *http.Response) error {
	hm := responseHeaders(resp)
	eos := resp.ContentLength == 0 || x.r.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	x.v.mu.Lock()
	x.s.maps[mapResponseHeaders] = &hm
	o := x.s.call(exportResponseHeaders, dirResponse, uint64(len(hm)), flag(eos))
	x.v.mu.Unlock()
	if !o.proceed() {
		return x.stop(o, false)
	}
	held := !o.released()
	if eos {
		if held {
			o, err := x.await(dirResponse)
			if err != nil {
				return errAbort
			}
			if !o.proceed() {
				return x.stop(o, false)
			}
		}
		x.writeHeaders()
		return nil
	}
	p := x.newPump(dirResponse, resp.Body, func() http.Header { return resp.Trailer })
	p.held = held
	for !p.done {
		if !p.held && !x.wroteHeaders {
			x.writeHeaders()
		}
		out, err := p.step()
		if err != nil {
			return x.pumpFailed(err, false)
		}
		if !p.held && !x.wroteHeaders {
			x.writeHeaders()
		}
		if len(out) > 0 {
			if _, err := x.w.Write(out); err != nil {
				return errAbort
			}
			_ = http.NewResponseController(x.w).Flush()
		}
	}
	x.v.mu.Lock()
	trailers := x.s.maps[mapResponseTrailers]
	x.v.mu.Unlock()
	if trailers != nil {
		for _, kv := range *trailers {
			k := http.TrailerPrefix + http.CanonicalHeaderKey(kv[0])
			x.w.Header()[k] = append(x.w.Header()[k], kv[1])
		}
	}
	return nil
}

// writeHeaders sends the response headers as the plugin left them.
func (x *exchange) writeHeaders() {
	x.v.mu.Lock()
	hm := slices.Clone(*x.s.maps[mapResponseHeaders])
	x.v.mu.Unlock()
	x.writeHeaderMap(hm)
}

func (x *exchange) writeHeaderMap(hm headerMap) {
	status, _ := hm.get(":status")
	code, err := strconv.Atoi(status)
	if err != nil || code < 200 || code > 999 {
		code = http.StatusBadGateway
	}
	toHTTP(x.w.Header(), hm)
	x.w.WriteHeader(code)
	x.wroteHeaders = true
	_ = http.NewResponseController(x.w).Flush()
}

// stop ends the stream on an outcome that does not proceed. A local
// response is sent unless the response has begun, in which case the
// stream is reset (as Envoy does); throughFilter passes it through the
// plugin's response callbacks first, as Envoy does with local replies
// made on the request path.
func (x *exchange) stop(o outcome, throughFilter bool) error {
	switch {
	case x.wroteHeaders || (o.local == nil && o.reset):
		return errAbort
	case o.local != nil:
		return x.respondLocal(o.local, throughFilter)
	default:
		failClosed(x.w)
		x.wroteHeaders = true
		return nil
	}
}

// respondLocal writes a local response: the plugin's, or one the gateway
// makes as Envoy would (an upstream failure).
func (x *exchange) respondLocal(lr *localResponse, throughFilter bool) error {
	hm := headerMap{{":status", strconv.Itoa(lr.status)}}
	for _, kv := range lr.headers {
		if len(kv[0]) > 0 && kv[0][0] != ':' {
			hm = append(hm, kv)
		}
	}
	body := lr.body
	if _, ok := hm.get("content-type"); !ok && len(body) > 0 {
		hm.add("content-type", "text/plain")
	}
	if throughFilter {
		x.v.mu.Lock()
		x.s.maps[mapResponseHeaders] = &hm
		o := x.s.call(exportResponseHeaders, dirResponse, uint64(len(hm)), flag(len(body) == 0))
		if o.proceed() && len(body) > 0 {
			x.s.body[bufferResponseBody] = &body
			x.s.call(exportResponseBody, dirResponse, uint64(len(body)), 1)
			x.s.body[bufferResponseBody] = nil
		}
		hm = slices.Clone(hm)
		x.v.mu.Unlock()
	}
	hm.replace("content-length", strconv.Itoa(len(body)))
	x.writeHeaderMap(hm)
	if _, err := x.w.Write(body); err != nil {
		return errAbort
	}
	return nil
}

// await waits, with the direction held, until the plugin resumes it or
// ends the stream (from an HTTP call's response, say), or the request is
// cancelled.
func (x *exchange) await(dir int) (outcome, error) {
	for {
		x.v.mu.Lock()
		o := x.s.collect(dir)
		x.v.mu.Unlock()
		if !o.proceed() || o.resumed {
			return o, nil
		}
		select {
		case <-x.s.wake:
		case <-x.ctx.Done():
			return o, x.ctx.Err()
		}
	}
}

// pumpFailed handles an error of a body pump.
func (x *exchange) pumpFailed(err error, throughFilter bool) error {
	var se *stopError
	if errors.As(err, &se) {
		return x.stop(se.o, throughFilter)
	}
	return errAbort // a connection broke
}

func (x *exchange) setBodyStop(o outcome) {
	x.stopMu.Lock()
	defer x.stopMu.Unlock()
	if x.bodyStop == nil {
		x.bodyStop = &o
	}
}

func (x *exchange) takeBodyStop() *outcome {
	x.stopMu.Lock()
	defer x.stopMu.Unlock()
	o := x.bodyStop
	x.bodyStop = nil
	return o
}

// bodyPump moves one direction's body through the plugin: it reads a
// chunk, hands it to the body callback, and releases what the plugin lets
// through. While the plugin holds the direction (it paused), chunks
// accumulate and each callback sees the whole buffer, as with Envoy's
// StopIterationAndBuffer; otherwise each callback sees its chunk.
type bodyPump struct {
	x       *exchange
	dir     int
	src     io.Reader
	trailer func() http.Header
	chunk   []byte
	buf     []byte // guarded by the VM's mu: the plugin reaches it
	held    bool
	done    bool
}

func (x *exchange) newPump(dir int, src io.Reader, trailer func() http.Header) *bodyPump {
	p := &bodyPump{x: x, dir: dir, src: src, trailer: trailer, chunk: make([]byte, chunkSize)}
	x.v.mu.Lock()
	x.s.body[dir] = &p.buf
	x.v.mu.Unlock()
	return p
}

// step moves one chunk. It returns the bytes released downstream (or
// upstream), a *stopError when the plugin ended the stream, or the
// source's error.
func (p *bodyPump) step() ([]byte, error) {
	n, err := readSome(p.src, p.chunk)
	eos := errors.Is(err, io.EOF)
	if err != nil && !eos {
		return nil, err
	}
	var trailers headerMap
	if eos {
		trailers = trailerMap(p.trailer())
	}
	bodyExport, trailersExport, trailersMap := exportRequestBody, exportRequestTrailers, mapRequestTrailers
	if p.dir == dirResponse {
		bodyExport, trailersExport, trailersMap = exportResponseBody, exportResponseTrailers, mapResponseTrailers
	}
	s, v := p.x.s, p.x.v
	v.mu.Lock()
	p.buf = append(p.buf, p.chunk[:n]...)
	// With trailers to come, the last data is not the end of the stream.
	o := s.call(bodyExport, p.dir, uint64(len(p.buf)), flag(eos && trailers == nil))
	if o.proceed() && trailers != nil {
		s.maps[trailersMap] = &trailers
		ot := s.call(trailersExport, p.dir, uint64(len(trailers)))
		if o.released() {
			ot.action = actionContinue
		}
		ot.resumed = ot.resumed || o.resumed
		o = ot
	}
	out := p.release(o)
	v.mu.Unlock()
	if !o.proceed() {
		return nil, &stopError{o}
	}
	if eos {
		if p.held {
			o, err := p.x.await(p.dir)
			if err != nil {
				return nil, err
			}
			if !o.proceed() {
				return nil, &stopError{o}
			}
			v.mu.Lock()
			out = p.release(outcome{resumed: true})
			v.mu.Unlock()
		}
		p.done = true
	}
	return out, nil
}

// release hands out the buffer if the plugin let it go, and otherwise
// holds it. The VM's mu must be held.
func (p *bodyPump) release(o outcome) []byte {
	if !o.proceed() || !o.released() {
		p.held = true
		return nil
	}
	out := p.buf
	p.buf, p.held = nil, false
	return out
}

// readSome reads until it has some bytes or an error.
func readSome(r io.Reader, b []byte) (int, error) {
	for {
		n, err := r.Read(b)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// upstreamBody is the request body of a request forwarded while its body
// still arrives: the HTTP transport reads it, and each read pumps the
// client's body through the plugin.
type upstreamBody struct {
	x       *exchange
	p       *bodyPump
	pending []byte
}

// Read implements io.Reader.
func (u *upstreamBody) Read(b []byte) (int, error) {
	for len(u.pending) == 0 {
		if u.p.done {
			return 0, io.EOF
		}
		out, err := u.p.step()
		if err != nil {
			var se *stopError
			if errors.As(err, &se) {
				u.x.setBodyStop(se.o)
			}
			return 0, err
		}
		u.pending = out
	}
	n := copy(b, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}
