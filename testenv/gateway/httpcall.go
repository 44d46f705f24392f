package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// maxCallResponse bounds the response body of one HTTP call; a larger one
// fails the call.
const maxCallResponse = 64 << 20

// callResponse is what proxy_on_http_call_response exposes: the
// response's headers (":status" first), body and trailers, or nothing for
// a failed call.
type callResponse struct {
	failed                      bool
	headers, trailers           headerMap
	body                        []byte
	numHeaders, numTrailers, nb int
}

// proxyHTTPCall is dispatch_http_call. As in Envoy the call belongs to the
// root context, whatever context made it; it needs a known cluster and the
// :method, :path and :authority headers (else BadArgument); it is made
// asynchronously, and its response, or its failure (connection error,
// timeout, a body over maxCallResponse) as a response with no headers, no
// body and no trailers, reaches proxy_on_http_call_response of the root
// context after the current call returns. A timeout of 0 means none.
func proxyHTTPCall(_ context.Context, v *vm, mem api.Memory, p []uint64) status {
	cluster, ok1 := readString(mem, p[0], p[1])
	rawHeaders, ok2 := read(mem, p[2], p[3])
	body, ok3 := read(mem, p[4], p[5])
	rawTrailers, ok4 := read(mem, p[6], p[7])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return statusInvalidMemoryAccess
	}
	headers, ok := deserializeMap(rawHeaders)
	if !ok {
		return statusBadArgument
	}
	if _, ok := deserializeMap(rawTrailers); !ok {
		return statusBadArgument
	}
	headers = lowerNames(headers)
	base := v.g.clusters[cluster]
	method, hasMethod := headers.get(":method")
	path, hasPath := headers.get(":path")
	authority, hasAuthority := headers.get(":authority")
	if base == nil || !hasMethod || !hasPath || !hasAuthority || method == "" || !strings.HasPrefix(path, "/") {
		return statusBadArgument
	}
	if v.g.ctx.Err() != nil {
		return statusInternalFailure // closing
	}
	req, err := http.NewRequestWithContext(v.g.ctx, method, base.String(), bytes.NewReader(body))
	if err != nil {
		return statusBadArgument
	}
	req.URL = targetURL(base, path)
	req.Host = authority
	req.ContentLength = int64(len(body))
	toHTTP(req.Header, headers, "content-length")
	if _, ok := headers.get("user-agent"); !ok {
		req.Header["User-Agent"] = []string{""} // Envoy adds none
	}
	v.nextCall++
	token := v.nextCall
	if !mem.WriteUint32Le(uint32(p[9]), token) {
		return statusInvalidMemoryAccess
	}
	timeout := time.Duration(uint32(p[8])) * time.Millisecond
	v.calls.Add(1)
	v.g.record(v.name, "debug", "gateway: HTTP call "+strconv.Itoa(int(token))+": "+method+" "+req.URL.String()+" (cluster "+cluster+")")
	v.g.wg.Add(1)
	go v.g.performCall(v, token, req, timeout)
	return statusOK
}

// targetURL is base with target (path and query) appended. The path goes
// on the request line exactly as the plugin gave it, not re-encoded.
func targetURL(base *url.URL, target string) *url.URL {
	u := *base
	path, query, _ := strings.Cut(target, "?")
	raw := base.EscapedPath() + path
	if strings.HasPrefix(raw, "//") {
		raw = "/" + strings.TrimLeft(raw, "/")
	}
	u.RawQuery = query
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
		if u.EscapedPath() == raw {
			return &u
		}
	}
	// net/url would re-encode this path: send it verbatim.
	u.Path, u.RawPath, u.Opaque = "", "", raw
	return &u
}

// performCall makes one HTTP call and posts its response to the VM.
func (g *Gateway) performCall(v *vm, token uint32, req *http.Request, timeout time.Duration) {
	defer g.wg.Done()
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	cr := &callResponse{failed: true}
	resp, err := g.client.Do(req.WithContext(ctx))
	if err == nil {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxCallResponse+1))
		resp.Body.Close()
		if rerr == nil && len(body) <= maxCallResponse {
			cr = &callResponse{headers: responseHeaders(resp), body: body, trailers: trailerMap(resp.Trailer)}
			cr.numHeaders, cr.nb, cr.numTrailers = len(cr.headers), len(body), len(cr.trailers)
		} else {
			err = rerr
		}
	}
	if cr.failed {
		g.record(v.name, "debug", "gateway: HTTP call "+strconv.Itoa(int(token))+" to "+req.URL.String()+" failed: "+errString(err))
	}
	if ctx := g.ctx; ctx.Err() != nil {
		return // closing: the VM's loop is gone
	}
	v.post(func() {
		v.call = cr
		v.invoke(exportHTTPCallResponse, v.rootID, uint64(v.rootID), uint64(token),
			uint64(cr.numHeaders), uint64(cr.nb), uint64(cr.numTrailers))
		v.call = nil
	})
}

func errString(err error) string {
	if err == nil {
		return "response too large"
	}
	return err.Error()
}
