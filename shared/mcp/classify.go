package mcp

import "fmt"

// Kind is the kind of a JSON-RPC message. The zero Kind is no kind: Classify
// returns it only with an error.
type Kind uint8

// The kinds of JSON-RPC 2.0 message.
const (
	// KindRequest has a method and an id; it expects a response.
	KindRequest Kind = iota + 1
	// KindNotification has a method and no id; nothing answers it.
	KindNotification
	// KindResponse has a result or an error, an id and no method. Clients
	// send them only on protocol versions before 2026-07-28, to answer a
	// server's request.
	KindResponse
)

// String returns "request", "notification" or "response".
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is what the filter needs to know of a JSON-RPC message. Strings
// are unescaped; a \u escape of an unpaired UTF-16 surrogate reads as
// U+FFFD, as encoding/json reads it.
type Message struct {
	Kind Kind
	// ID is the raw JSON of the id, a string (with its quotes and escapes)
	// or a number, exactly as sent, so that a response can echo it. It
	// aliases the body passed to Classify; it is nil for a notification.
	ID []byte
	// Method is the JSON-RPC method; empty for a response.
	Method string
	// Name is what policy restricts besides the method: params.name for
	// tools/call and prompts/get, params.uri for resources/read. It is
	// empty for other methods and when the member is absent.
	Name string
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"],
	// which every request carries from MCP 2026-07-28 on; empty when absent.
	ProtocolVersion string
}

// The methods whose params carry the name that policy restricts.
const (
	methodToolsCall     = "tools/call"
	methodPromptsGet    = "prompts/get"
	methodResourcesRead = "resources/read"
)

// metaProtocolVersion is the params._meta key of the protocol version.
const metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"

// The members Classify reads at each level, for the check that no other key
// differs from one of them only in letter case.
var (
	topKeys    = [][]byte{[]byte("jsonrpc"), []byte("id"), []byte("method"), []byte("params"), []byte("result"), []byte("error")}
	paramsKeys = [][]byte{[]byte("name"), []byte("uri"), []byte("_meta")}
	metaKeys   = [][]byte{[]byte(metaProtocolVersion)}
)

// Classify reads one JSON-RPC 2.0 message from body and returns its kind,
// id, method and, for the methods that have one, the name that policy
// restricts. It scans body once, reads only the members it needs, and checks
// that the whole body is well-formed.
//
// When body has several problems, the error is the first of ErrParse
// (including ErrTooDeep), ErrBatch, ErrDuplicateKey and ErrInvalidRequest
// that applies. On error the Message is the zero Message.
//
// The returned ID aliases body: do not modify body while the Message is in
// use. Method and Name never alias it.
func Classify(body []byte) (Message, error) {
	c := classifier{scanner: scanner{b: body}}
	c.scan()
	switch {
	case c.err != nil:
		return Message{}, c.err
	case c.batch:
		return Message{}, ErrBatch
	case c.dup != nil:
		return Message{}, c.dup
	}
	m := c.message()
	if c.invalid != nil {
		return Message{}, c.invalid
	}
	return m, nil
}

// classifier scans a body and keeps, for each member Classify reads, where
// its raw value is. Members can come in any order (params before method), so
// they are judged only after the whole body was scanned.
type classifier struct {
	scanner
	batch   bool
	dup     error // first duplicate key
	invalid error // first violation of the JSON-RPC or MCP message shape

	jsonrpc, id, method, params, result, rpcError member
	name, uri, version                            member
}

// member is the raw value of an object member, c.b[start:end]; end is 0 when
// the member is absent.
type member struct {
	start, end int
	escaped    bool // for a string, whether it has escapes
}

func (m member) present() bool { return m.end > 0 }

func (c *classifier) reject(reason string) {
	if c.invalid == nil {
		c.invalid = fmt.Errorf("%w: %s", ErrInvalidRequest, reason)
	}
}

// duplicate records a key that repeats one before it; at is where it starts.
func (c *classifier) duplicate(at int) {
	if c.dup == nil {
		c.dup = fmt.Errorf("%w at offset %d", ErrDuplicateKey, at)
	}
}

// member scans a value and returns where it is.
func (c *classifier) member() member {
	start, escaped := c.value()
	return member{start, c.i, escaped}
}

func (c *classifier) scan() {
	switch c.peek() {
	case '{':
		c.top()
	case '[':
		c.batch = true
		c.value()
	default:
		c.reject("not a JSON object")
		c.value()
	}
	if c.ws(); c.err == nil && c.i < len(c.b) {
		c.fail("data after the message")
	}
}

func (c *classifier) top() {
	if !c.open() {
		return
	}
	var keys keySet
	for first := true; c.more(first); first = false {
		at := c.i
		k := c.key()
		if c.err != nil {
			return
		}
		if keys.add(k) {
			c.duplicate(at)
		}
		switch string(k) {
		case "jsonrpc":
			c.jsonrpc = c.member()
		case "id":
			c.id = c.member()
		case "method":
			c.method = c.member()
		case "params":
			if c.peek() == '{' {
				start := c.i
				c.paramsObject()
				c.params = member{start: start, end: c.i}
			} else {
				c.params = c.member()
			}
		case "result":
			c.result = c.member()
		case "error":
			c.rpcError = c.member()
		default:
			if foldsToAny(k, topKeys) {
				c.reject("key differs from a JSON-RPC member only in case")
			}
			c.value()
		}
	}
}

func (c *classifier) paramsObject() {
	if !c.open() {
		return
	}
	var keys keySet
	for first := true; c.more(first); first = false {
		at := c.i
		k := c.key()
		if c.err != nil {
			return
		}
		if keys.add(k) {
			c.duplicate(at)
		}
		switch string(k) {
		case "name":
			c.name = c.member()
		case "uri":
			c.uri = c.member()
		case "_meta":
			if c.peek() == '{' {
				c.metaObject()
			} else {
				c.value()
			}
		default:
			if foldsToAny(k, paramsKeys) {
				c.reject("params key differs from name, uri or _meta only in case")
			}
			c.value()
		}
	}
}

func (c *classifier) metaObject() {
	if !c.open() {
		return
	}
	var keys keySet
	for first := true; c.more(first); first = false {
		at := c.i
		k := c.key()
		if c.err != nil {
			return
		}
		if keys.add(k) {
			c.duplicate(at)
		}
		if string(k) == metaProtocolVersion {
			c.version = c.member()
			continue
		}
		if foldsToAny(k, metaKeys) {
			c.reject("_meta key differs from " + metaProtocolVersion + " only in case")
		}
		c.value()
	}
}

// message judges the scanned members and builds the Message; it records
// what is wrong in c.invalid.
func (c *classifier) message() Message {
	if !c.jsonrpc.present() || !c.is(c.jsonrpc, "2.0") {
		c.reject(`"jsonrpc" is not "2.0"`)
	}
	var m Message
	isResponse := c.result.present() || c.rpcError.present()
	switch {
	case c.method.present() && isResponse:
		c.reject("both method and result or error")
	case c.method.present():
		m.Kind = KindNotification
		if c.id.present() {
			m.Kind = KindRequest
		}
		if p := c.first(c.params); p != 0 && p != '{' && p != '[' {
			c.reject("params is not an object or array")
		}
		if c.first(c.method) != '"' {
			c.reject("method is not a string")
			break
		}
		m.Method = intern(content(c.raw(c.method), c.method.escaped))
		switch m.Method {
		case methodToolsCall, methodPromptsGet:
			m.Name = c.text(c.name, "params.name")
		case methodResourcesRead:
			m.Name = c.text(c.uri, "params.uri")
		}
		m.ProtocolVersion = c.text(c.version, "params._meta protocol version")
	case isResponse:
		m.Kind = KindResponse
		switch {
		case c.result.present() && c.rpcError.present():
			c.reject("both result and error")
		case c.rpcError.present() && c.first(c.rpcError) != '{':
			c.reject("error is not an object")
		case !c.id.present():
			c.reject("response without id")
		case c.params.present():
			c.reject("response with params")
		}
	default:
		c.reject("no method")
	}
	if c.id.present() {
		switch c.first(c.id) {
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			m.ID = c.raw(c.id)
		case 'n':
			c.reject("id is null")
		default:
			c.reject("id is not a string or number")
		}
	}
	return m
}

func (c *classifier) raw(m member) []byte { return c.b[m.start:m.end] }

// first returns the first byte of a member's value, which tells its type,
// or 0 when it is absent.
func (c *classifier) first(m member) byte {
	if !m.present() {
		return 0
	}
	return c.b[m.start]
}

// is reports whether m is a string whose value is s.
func (c *classifier) is(m member, s string) bool {
	return c.first(m) == '"' && string(content(c.raw(m), m.escaped)) == s
}

// text returns the value of m, which must be a string if present.
func (c *classifier) text(m member, what string) string {
	switch c.first(m) {
	case 0:
		return ""
	case '"':
		return intern(content(c.raw(m), m.escaped))
	}
	c.reject(what + " is not a string")
	return ""
}

// intern returns b as a string, without allocating for the method names
// and protocol versions that most requests carry.
func intern(b []byte) string {
	switch string(b) {
	case "tools/call":
		return "tools/call"
	case "tools/list":
		return "tools/list"
	case "resources/read":
		return "resources/read"
	case "resources/list":
		return "resources/list"
	case "resources/templates/list":
		return "resources/templates/list"
	case "prompts/get":
		return "prompts/get"
	case "prompts/list":
		return "prompts/list"
	case "completion/complete":
		return "completion/complete"
	case "ping":
		return "ping"
	case "server/discover":
		return "server/discover"
	case "subscriptions/listen":
		return "subscriptions/listen"
	case "initialize":
		return "initialize"
	case "notifications/initialized":
		return "notifications/initialized"
	case "notifications/cancelled":
		return "notifications/cancelled"
	case Version20260728:
		return Version20260728
	}
	return string(b)
}
