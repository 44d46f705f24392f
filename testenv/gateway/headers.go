package gateway

import (
	"encoding/binary"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// headerMap is a proxy-wasm header map: ordered pairs with lower-case
// names, repeated names allowed, pseudo-headers (":path", ":status") first.
// Like Envoy, every operation lower-cases the name it is given.
type headerMap [][2]string

// get returns the first value of name: Envoy's get_header_map_value
// answers with the first of repeated headers.
func (m headerMap) get(name string) (string, bool) {
	for _, kv := range m {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

func (m *headerMap) add(name, value string) {
	*m = append(*m, [2]string{name, value})
}

// replace sets the first entry of name to value and removes the others, or
// adds it.
func (m *headerMap) replace(name, value string) {
	i := slices.IndexFunc(*m, func(kv [2]string) bool { return kv[0] == name })
	if i < 0 {
		m.add(name, value)
		return
	}
	(*m)[i][1] = value
	*m = append((*m)[:i+1], slices.DeleteFunc((*m)[i+1:], func(kv [2]string) bool { return kv[0] == name })...)
}

func (m *headerMap) remove(name string) {
	*m = slices.DeleteFunc(*m, func(kv [2]string) bool { return kv[0] == name })
}

// serializeMap encodes pairs in the proxy-wasm map format: the number of
// pairs (uint32 little-endian), then each pair's name and value lengths,
// then each name and value followed by a NUL byte.
func serializeMap(m [][2]string) []byte {
	size := 4
	for _, kv := range m {
		size += 8 + len(kv[0]) + 1 + len(kv[1]) + 1
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m)))
	for _, kv := range m {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[1])))
	}
	for _, kv := range m {
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	return b
}

// deserializeMap decodes the proxy-wasm map format, with bounds checks. An
// empty input is an empty map (the SDK sends nothing for no pairs).
func deserializeMap(b []byte) (headerMap, bool) {
	if len(b) == 0 {
		return headerMap{}, true
	}
	if len(b) < 4 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || n > (len(b)-4)/8 {
		return nil, false
	}
	sizes, data := b[4:4+8*n], b[4+8*n:]
	m := make(headerMap, 0, n)
	for i := range n {
		kl := int(binary.LittleEndian.Uint32(sizes[8*i:]))
		vl := int(binary.LittleEndian.Uint32(sizes[8*i+4:]))
		if kl < 0 || vl < 0 || kl+1+vl+1 > len(data) {
			return nil, false
		}
		k := string(data[:kl])
		v := string(data[kl+1 : kl+1+vl])
		data = data[kl+1+vl+1:]
		m = append(m, [2]string{k, v})
	}
	return m, true
}

// lowerNames returns m with every name lower-cased.
func lowerNames(m headerMap) headerMap {
	for i := range m {
		m[i][0] = strings.ToLower(m[i][0])
	}
	return m
}

// hopByHop are the connection-specific headers a proxy neither shows its
// filters nor forwards.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "trailer": true, "host": true,
}

// appendHeaders appends h, lower-cased and without hop-by-hop headers, in
// name order (net/http keeps no order).
func appendHeaders(m headerMap, h http.Header) headerMap {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		lk := strings.ToLower(k)
		if hopByHop[lk] {
			continue
		}
		for _, v := range h[k] {
			m = append(m, [2]string{lk, v})
		}
	}
	return m
}

// requestHeaders is the request header map Envoy's HTTP/1 codec and
// connection manager hand the filter chain: pseudo-headers, the client's
// headers, and x-forwarded-proto and x-request-id as the connection
// manager adds them.
func requestHeaders(r *http.Request) headerMap {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	m := headerMap{{":authority", r.Host}, {":path", requestTarget(r)}, {":method", r.Method}, {":scheme", scheme}}
	m = appendHeaders(m, r.Header)
	if _, ok := m.get("content-length"); !ok && r.ContentLength > 0 {
		m.add("content-length", strconv.FormatInt(r.ContentLength, 10))
	}
	m.replace("x-forwarded-proto", scheme)
	if _, ok := m.get("x-request-id"); !ok {
		m.add("x-request-id", uuid.NewString()) // a random (version 4) UUID, as Envoy's
	}
	return m
}

// requestTarget is the target as it came on the request line, so that
// what the filter sees (and verifies signatures over) is what the client
// sent, not net/url's re-encoding of it.
func requestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// responseHeaders is the response header map: ":status" and the headers.
func responseHeaders(resp *http.Response) headerMap {
	m := headerMap{{":status", strconv.Itoa(resp.StatusCode)}}
	m = appendHeaders(m, resp.Header)
	if _, ok := m.get("content-length"); !ok && resp.ContentLength >= 0 && !resp.Uncompressed {
		m.add("content-length", strconv.FormatInt(resp.ContentLength, 10))
	}
	return m
}

// trailerMap converts trailers; nil when there are none.
func trailerMap(h http.Header) headerMap {
	if len(h) == 0 {
		return nil
	}
	return appendHeaders(nil, h)
}

// toHTTP copies the regular (non-pseudo, non-hop-by-hop) headers of m into
// h under their canonical names, except those in skip.
func toHTTP(h http.Header, m headerMap, skip ...string) {
	for _, kv := range m {
		if strings.HasPrefix(kv[0], ":") || hopByHop[kv[0]] || slices.Contains(skip, kv[0]) {
			continue
		}
		k := http.CanonicalHeaderKey(kv[0])
		h[k] = append(h[k], kv[1])
	}
}
