package filter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/knaight/knaight/shared/decision"
	"github.com/knaight/knaight/shared/sign"
	"github.com/knaight/knaight/shared/snapshot"
)

func TestValidConfigStarts(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 0)
		if logs := g.GetCriticalLogs(); len(logs) != 0 {
			t.Errorf("critical logs on a valid start: %q", logs)
		}
		if !containsLog(g.GetInfoLogs(), `organization "acme", environment "production", gateway `+fxGateway) {
			t.Errorf("info logs do not name the configuration: %q", g.GetInfoLogs())
		}
		if got := g.GetTickPeriod(); got != uint32(tickPeriod/time.Millisecond) {
			t.Errorf("tick period %d ms", got)
		}
	})
}

func TestInvalidConfigFailsToStart(t *testing.T) {
	cases := []struct{ name, config, log string }{
		{"empty", "", "configuration: is empty"},
		{"not an object", `["acme"]`, "must be a JSON object"},
		{"unknown field", strings.Replace(validConfig, "{", `{"mode": "allow", `, 1), `field "mode"`},
		{"bad environment", strings.Replace(validConfig, `"production"`, `"prod"`, 1), `field "environment"`},
		{"bad credential", strings.Replace(validConfig, fxCred.String(), "secret", 1), `field "gatewayCredential"`},
		{"bad resource", strings.Replace(validConfig, fxResource, "mcp", 1), `field "resource"`},
	}
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				host := newHost(t, vm, tc.config, nil)
				if got := host.StartPlugin(); got != types.OnPluginStartStatusFailed {
					t.Fatalf("StartPlugin = %v, want Failed", got)
				}
				logs := host.GetCriticalLogs()
				if !containsLog(logs, tc.log) {
					t.Errorf("critical logs %q do not contain %q", logs, tc.log)
				}
				if containsLog(logs, fxCred.String()[20:]) {
					t.Errorf("critical logs show the credential")
				}
			})
		}
	})
}

func TestWithoutSnapshotEveryRequestIsDeniedWith503(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 0)
		res := g.send(toolCall(t, "deploy_app"))
		body := expectDenied(t, res, 503, decision.SnapshotUnavailable)
		if string(body.ID) != "null" || body.Error.Code != -32603 {
			t.Errorf("body %+v", body)
		}
		// The metadata cannot be served either: it names the issuer.
		res = g.send(request{method: "GET", path: "/.well-known/oauth-protected-resource/mcp", unsigned: true})
		expectDenied(t, res, 503, decision.SnapshotUnavailable)
	})
}

func TestAllowedRequestIsSignedForTheUpstream(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		r := toolCall(t, "deploy_app")
		r.extra = [][2]string{{"x-sck-organization", "acme"}, {"x-knaight-decision-id", "forged"}}
		res := g.send(r)
		expectAllowed(t, res)
		fwd := res.forwarded
		if v, ok := headerValue(fwd, "authorization"); ok {
			t.Errorf("authorization forwarded: %q", v)
		}
		if _, ok := headerValue(fwd, "x-sck-organization"); ok {
			t.Error("inbound X-SCK-* header forwarded")
		}
		id, _ := headerValue(fwd, HeaderDecisionID)
		if !decisionIDPattern.MatchString(id) {
			t.Errorf("decision id %q", id)
		}
		if lv, _ := headerValue(fwd, HeaderTrustLevel); lv != "L3" {
			t.Errorf("trust level %q", lv)
		}
		if kid, _ := headerValue(fwd, "x-knaight-key-id"); kid != "up_1" {
			t.Errorf("key id %q", kid)
		}
		// The upstream verifies with the upstream key, as an MCP server
		// importing shared/sign would.
		get := func(name string) []string {
			if v, ok := headerValue(fwd, name); ok {
				return []string{v}
			}
			return nil
		}
		h, err := sign.ParseHeaders(get)
		if err != nil {
			t.Fatalf("forwarded signature headers: %v\n%s", err, fmtHeaders(fwd))
		}
		if h.Agent != fxAgent {
			t.Errorf("forwarded agent %q", h.Agent)
		}
		req := sign.Request{Method: "POST", Target: "/mcp", BodySHA256: sign.BodyDigest(r.body), Agent: h.Agent, Timestamp: h.Timestamp}
		if err := (sign.Verifier{Now: testNow}).Verify(fxUpstream, req, h.Signature); err != nil {
			t.Errorf("upstream signature does not verify: %v", err)
		}
		if err := (sign.Verifier{Now: testNow}).Verify(fxHMAC, req, h.Signature); err == nil {
			t.Error("the forwarded signature is the agent's, not the gateway's")
		}

		recs := g.flushRecords(200)
		if len(recs) != 1 {
			t.Fatalf("records %+v", recs)
		}
		rec := recs[0]
		if !rec.Allow || rec.Reason != decision.Allowed || rec.ID != id || rec.Agent != fxAgent || rec.MCPMethod != "tools/call" ||
			rec.Name != "deploy_app" || rec.PolicyID != "pol-deploy" || rec.TrustLevel != "L3" || rec.SnapshotVersion != 1 ||
			rec.BundleRevision != "r1" || rec.HTTPMethod != "POST" || rec.Path != "/mcp" || rec.TokenID == "" {
			t.Errorf("record %+v", rec)
		}
		if err := rec.Validate(); err != nil {
			t.Errorf("record does not validate: %v", err)
		}
		if n, err := g.GetCounterMetric("knaight.decisions.allow.allowed"); err != nil || n != 1 {
			t.Errorf("allow counter %d, %v", n, err)
		}
	})
}

// TestDenials runs one request per deny reason the fixture can provoke and
// checks the status, the reason and the authentication challenge.
func TestDenials(t *testing.T) {
	type tc struct {
		name   string
		req    func(t *testing.T) request
		status uint32
		reason decision.Reason
		// challenge is a substring of WWW-Authenticate, "" for none.
		challenge string
		// id is the JSON-RPC id the error must carry.
		id string
	}
	callWith := func(mut func(c tokenClaims)) func(t *testing.T) request {
		return func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			c := fxClaims()
			mut(c)
			r.token = mint(t, c, fxTokenKID)
			return r
		}
	}
	cases := []tc{
		{"no token", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.token = ""; return r },
			401, decision.TokenMissing, `Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`, "null"},
		{"garbage token", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.token = "abc"; return r },
			401, decision.TokenInvalid, `error="invalid_token"`, "null"},
		{"token for another resource", callWith(func(c tokenClaims) { c["aud"] = "https://other.example/mcp" }),
			401, decision.TokenInvalid, `error="invalid_token"`, "null"},
		{"expired token", callWith(func(c tokenClaims) { c["exp"] = testNow().Add(-time.Minute).Unix() }),
			401, decision.TokenInvalid, `error="invalid_token"`, "null"},
		{"token from another issuer", callWith(func(c tokenClaims) { c["iss"] = "https://evil.example" }),
			401, decision.TokenInvalid, `error="invalid_token"`, "null"},
		{"revoked token", callWith(func(c tokenClaims) { c["jti"] = fxRevoked }),
			401, decision.TokenRevoked, `error="invalid_token"`, "null"},
		{"unsigned request", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.unsigned = true; return r },
			401, decision.SignatureMissing, `resource_metadata=`, "null"},
		{"malformed signature", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.extra = [][2]string{{"x-knaight-signature", "hmac-sha256=zz"}}
			return r
		}, 401, decision.SignatureMalformed, `resource_metadata=`, "null"},
		{"signature header repeated with another value", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.repeat = [][2]string{{"x-knaight-signature", "hmac-sha256=" + strings.Repeat("0", 64)}}
			return r
		}, 401, decision.SignatureMalformed, `resource_metadata=`, "null"},
		{"stale timestamp", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.ts = testNow().Add(-6 * time.Minute)
			return r
		},
			401, decision.TimestampSkew, `resource_metadata=`, "null"},
		{"future timestamp", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.ts = testNow().Add(6 * time.Minute)
			return r
		},
			401, decision.TimestampSkew, `resource_metadata=`, "null"},
		{"token of another agent", callWith(func(c tokenClaims) { c["sub"], c["ans"] = fxIdle, fxIdle }),
			401, decision.AgentMismatch, `resource_metadata=`, "null"},
		{"agent not registered", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			c := fxClaims()
			c["sub"], c["ans"] = fxStranger, fxStranger
			r.token, r.agent = mint(t, c, fxTokenKID), fxStranger
			return r
		}, 401, decision.AgentUnknown, `resource_metadata=`, "null"},
		{"agent suspended in ANS", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			c := fxClaims()
			c["sub"], c["ans"] = fxIdle, fxIdle
			r.token, r.agent = mint(t, c, fxTokenKID), fxIdle
			return r
		}, 403, decision.AgentInactive, "", "null"},
		{"unknown key id", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.extra = [][2]string{{"x-knaight-key-id", "hk_old"}}
			return r
		}, 401, decision.SignatureUnknownKey, `resource_metadata=`, "null"},
		{"signed with another key", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.key = fxUpstream; return r },
			401, decision.SignatureInvalid, `resource_metadata=`, "null"},
		{"body changed after signing", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			hs := r.headers(t)
			r.unsigned, r.extra = true, hs[4:]
			r.body = []byte(strings.Replace(string(r.body), "deploy_app", "deploy_all", 1))
			return r
		}, 401, decision.SignatureInvalid, `resource_metadata=`, "null"},
		{"not JSON", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.body = []byte(`{"jsonrpc":`); return r },
			400, decision.JSONRPCParseError, "", "null"},
		{"batch", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.body = []byte(`[` + string(r.body) + `]`)
			return r
		}, 400, decision.JSONRPCBatch, "", "null"},
		{"not JSON-RPC 2.0", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.body = []byte(`{"jsonrpc":"1.0","id":1,"method":"tools/list"}`)
			return r
		}, 400, decision.JSONRPCInvalid, "", "null"},
		{"2026-07-28 header disagrees with the body", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.extra = [][2]string{{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "tools/call"}, {"mcp-name", "deploy_docs"}}
			return r
		}, 400, decision.MCPHeaderMismatch, "", "7"},
		{"body over the limit", func(t *testing.T) request {
			r := toolCall(t, "deploy_app")
			r.body = []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy_app","arguments":{"x":"` + strings.Repeat("a", 5000) + `"}}}`)
			return r
		}, 413, decision.BodyTooLarge, "", "null"},
		{"role without a policy", func(t *testing.T) request { return asAgent(t, toolCall(t, "deploy_app"), fxOrphan) },
			403, decision.PolicyMissing, "", "7"},
		{"body over the policy's limit", func(t *testing.T) request { return asAgent(t, toolCall(t, "deploy_app"), fxReader) },
			403, decision.ConstraintViolated, "", "7"},
		{"tool outside the allowed endpoints", func(t *testing.T) request { return toolCall(t, "delete_everything") },
			403, decision.EndpointNotAllowed, "", "7"},
		{"scope missing", callWith(func(c tokenClaims) { c["scope"] = "mcp:read" }),
			403, decision.ScopeMissing, `Bearer error="insufficient_scope", scope="mcp:read mcp:invoke"`, "7"},
		{"LoA too low", callWith(func(c tokenClaims) { c["loa"] = 1 }),
			403, decision.LoABelowRequired, "", "7"},
		{"HTTP method MCP does not use", func(t *testing.T) request { r := toolCall(t, "deploy_app"); r.method = "PUT"; return r },
			405, decision.MethodNotAllowed, "", "null"},
	}
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				res := g.send(c.req(t))
				body := expectDenied(t, res, c.status, c.reason)
				if string(body.ID) != c.id {
					t.Errorf("JSON-RPC id %s, want %s", body.ID, c.id)
				}
				www, has := headerValue(res.local.headers, "www-authenticate")
				if c.challenge == "" && has {
					t.Errorf("unexpected WWW-Authenticate %q", www)
				}
				if c.challenge != "" && !strings.Contains(www, c.challenge) {
					t.Errorf("WWW-Authenticate %q, want it to contain %q", www, c.challenge)
				}
				if strings.Contains(string(res.local.body), fxCred.String()) {
					t.Error("the response shows the gateway credential")
				}
			})
		}
		// Every denial is recorded with its reason, and counted.
		recs := g.flushRecords(200)
		if len(recs) != len(cases) {
			t.Fatalf("%d records for %d requests", len(recs), len(cases))
		}
		for i, rec := range recs {
			if rec.Allow || rec.Reason != cases[i].reason || rec.Status != int(cases[i].status) {
				t.Errorf("record %d: %+v, want %s", i, rec, cases[i].reason)
			}
			if err := rec.Validate(); err != nil {
				t.Errorf("record %d does not validate: %v", i, err)
			}
		}
		if n, _ := g.GetCounterMetric("knaight.decisions.deny.token_invalid"); n != 4 {
			t.Errorf("token_invalid counter %d, want 4", n)
		}
	})
}

func TestRequestsJudgedByMethod(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		base := toolCall(t, "deploy_app")
		t.Run("GET opens the event stream", func(t *testing.T) {
			r := base
			r.method, r.body = "GET", nil
			expectAllowed(t, g.send(r))
		})
		t.Run("DELETE ends the session", func(t *testing.T) {
			r := base
			r.method, r.body = "DELETE", nil
			expectAllowed(t, g.send(r))
		})
		t.Run("a notification", func(t *testing.T) {
			r := base
			r.body = []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			expectAllowed(t, g.send(r))
		})
		t.Run("a response to a server request", func(t *testing.T) {
			r := base
			r.body = []byte(`{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}`)
			expectAllowed(t, g.send(r))
		})
		t.Run("2026-07-28 headers that match", func(t *testing.T) {
			r := base
			r.body = []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy_app","arguments":{},` +
				`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)
			r.extra = [][2]string{{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "tools/call"}, {"mcp-name", "deploy_app"}}
			expectAllowed(t, g.send(r))
		})
		t.Run("an HS256 token", func(t *testing.T) {
			r := base
			r.token = mint(t, fxClaims(), fxHSKID)
			expectAllowed(t, g.send(r))
		})
		recs := g.flushRecords(200)
		want := []string{MethodStream, MethodClose, "notifications/initialized", "", "tools/call", "tools/call"}
		if len(recs) != len(want) {
			t.Fatalf("%d records", len(recs))
		}
		for i, rec := range recs {
			if rec.MCPMethod != want[i] && !(want[i] == MethodStream || want[i] == MethodClose) {
				t.Errorf("record %d method %q, want %q", i, rec.MCPMethod, want[i])
			}
		}
	})
}

func TestReplayIsRejected(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		r := toolCall(t, "deploy_app")
		r.ts = testNow()
		expectAllowed(t, g.send(r))
		expectDenied(t, g.send(r), 401, decision.Replay)
		// A new signature of the same call is a new request.
		r.ts = r.ts.Add(time.Second)
		expectAllowed(t, g.send(r))
	})
}

// TestReplayAcrossVMs checks that the replay state is shared: a signature
// one VM accepted is refused by another VM of the same proxy.
func TestReplayAcrossVMs(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		r := toolCall(t, "deploy_app")
		r.ts = testNow()
		expectAllowed(t, g.send(r))
		// A second root context, as another worker VM has, over the same
		// shared data.
		cfg, _ := ParseConfig([]byte(validConfig))
		other := &pluginContext{config: cfg, keys: newSharedKeys(cfg)}
		if err := other.initReplaySlots(); err != nil { // as its OnPluginStart does
			t.Fatal(err)
		}
		hs := r.headers(t)
		sigHeader, _ := headerValue(hs, "x-knaight-signature")
		sig, err := sign.ParseSignature(sigHeader)
		if err != nil {
			t.Fatal(err)
		}
		seen, err := other.seen(&sig, testNow().Add(5*time.Minute), testNow())
		if err != nil || !seen {
			t.Errorf("another VM: seen = %v, %v; want true", seen, err)
		}
	})
}

func TestMetadataIsServed(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
			res := g.send(request{method: "GET", path: path, unsigned: true})
			if res.local == nil || res.local.status != 200 {
				t.Fatalf("%s: %+v", path, res.local)
			}
			var md struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
				ScopesSupported      []string `json:"scopes_supported"`
				BearerMethods        []string `json:"bearer_methods_supported"`
			}
			if err := json.Unmarshal(res.local.body, &md); err != nil {
				t.Fatal(err)
			}
			if md.Resource != fxResource || len(md.AuthorizationServers) != 1 || md.AuthorizationServers[0] != fxIssuer ||
				len(md.BearerMethods) != 1 || md.BearerMethods[0] != "header" {
				t.Errorf("metadata %s", res.local.body)
			}
		}
	})
}

func TestRevocationArrivesWithTheNextSnapshot(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		r := toolCall(t, "deploy_app")
		expectAllowed(t, g.send(r)) // the token is now cached
		var claims struct {
			JTI string `json:"jti"`
		}
		payload, _ := b64decode(strings.Split(r.token, ".")[1])
		_ = json.Unmarshal(payload, &claims)

		s := fxSnapshot(2)
		s.Revocations = append(s.Revocations, snapshot.Revocation{TokenID: claims.JTI, ExpiresAt: testNow().Add(time.Hour).UTC()})
		g.publish(s)
		r.ts = testNow().Add(time.Second)
		expectDenied(t, g.send(r), 401, decision.TokenRevoked)

		// The agent is suspended in the next one.
		s = fxSnapshot(3)
		s.Agents[0].Status = "SUSPENDED"
		g.publish(s)
		r = toolCall(t, "deploy_app")
		expectDenied(t, g.send(r), 403, decision.AgentInactive)

		// An older version never replaces a newer one.
		g.publish(fxSnapshot(2))
		r.ts = testNow().Add(2 * time.Second)
		expectDenied(t, g.send(r), 403, decision.AgentInactive)

		// A rotated-out HMAC key stops verifying when its overlap ends.
		s = fxSnapshot(4)
		past := testNow().Add(-time.Second)
		s.Agents[0].Keys[0].ExpiresAt = &past
		g.publish(s)
		expectDenied(t, g.send(toolCall(t, "deploy_app")), 401, decision.SignatureUnknownKey)
	})
}

func TestTrustBelowThreshold(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		s := fxSnapshot(1)
		s.Agents[0].TrustLevel = 2
		g := newGateway(t, vm, validConfig, 0)
		g.publish(s)
		expectDenied(t, g.send(toolCall(t, "deploy_app")), 403, decision.TrustBelowThreshold)
		s = fxSnapshot(2)
		g.publish(s)
		expectAllowed(t, g.send(toolCall(t, "deploy_app")))
	})
}

func TestForgedSnapshotIsRejected(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		s := fxSnapshot(2)
		s.Agents[1].Status = snapshot.StatusActive // what a forger would want
		g.answerPoll(200, envelope(t, s, fxForgeKey))
		if !containsLog(g.GetCriticalLogs(), "rejected a snapshot") {
			t.Errorf("critical logs %q", g.GetCriticalLogs())
		}
		if n, _ := g.GetCounterMetric(metricSnapshotRejects); n != 1 {
			t.Errorf("rejected counter %d", n)
		}
		// Version 1 still decides.
		r := toolCall(t, "deploy_app")
		c := fxClaims()
		c["sub"], c["ans"] = fxIdle, fxIdle
		r.token, r.agent = mint(t, c, fxTokenKID), fxIdle
		expectDenied(t, g.send(r), 403, decision.AgentInactive)
		if v, _ := g.GetGaugeMetric(metricSnapshotVersion); v != 1 {
			t.Errorf("version gauge %d", v)
		}
	})
}

func TestStaleSnapshotFailsClosed(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		expectAllowed(t, g.send(toolCall(t, "deploy_app")))
		// Age the head as if the manager had not answered for 61 s.
		setHeadConfirmed(t, 1, testNow().Add(-61*time.Second))
		expectDenied(t, g.send(toolCall(t, "deploy_app")), 503, decision.SnapshotStale)
		// A 304 from the manager confirms it again.
		g.answerPoll(304, nil)
		expectAllowed(t, g.send(toolCall(t, "deploy_app")))
	})
}

func TestDecisionsAreRetriedUntilAcknowledged(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		expectAllowed(t, g.send(toolCall(t, "deploy_app")))
		first := g.flushRecords(503)
		second := g.flushRecords(200) // after the backoff
		if len(first) != 1 || len(second) != 1 || first[0].ID != second[0].ID {
			t.Fatalf("first %+v, then %+v", first, second)
		}
		if n, _ := g.GetCounterMetric(metricFlushErrors); n != 1 {
			t.Errorf("flush errors %d", n)
		}
	})
}

func TestOverflowIsReportedAsAGap(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, fxConfig(`, "queueLimit": 2`), 1)
		g.Tick() // take the lease before the requests
		for range 5 {
			expectDenied(t, g.send(request{method: "POST", path: "/mcp", unsigned: true, body: []byte("{}")}), 401, decision.TokenMissing)
		}
		recs := g.flushRecords(200)
		if len(recs) != 3 || recs[2].Kind != decision.KindGap || recs[2].Lost != 3 {
			t.Fatalf("records %+v", recs)
		}
		if err := recs[2].Validate(); err != nil {
			t.Error(err)
		}
		if n, _ := g.GetCounterMetric(metricQueueDropped); n != 3 {
			t.Errorf("dropped counter %d", n)
		}
	})
}

// TestForwardedSignatureHeadersAreTheGatewaysAlone checks what the
// upstream gets whatever form the client's signature headers took: each
// header the gateway sets once, with the gateway's value, and none of the
// client's credentials, however the client spelled or repeated them.
func TestForwardedSignatureHeadersAreTheGatewaysAlone(t *testing.T) {
	vmTest(t, false, func(t *testing.T, vm types.VMContext) {
		g := newGateway(t, vm, validConfig, 1)
		cases := []struct {
			name  string
			extra [][2]string
			// repeat lists headers to send a second time with the value
			// the signed request has.
			repeat []string
		}{
			{name: "plain"},
			{name: "organization as the gateway sets it", extra: [][2]string{{"x-knaight-organization", "acme"}}},
			{name: "forged gateway headers", extra: [][2]string{{"x-knaight-decision-id", "forged"}, {"x-knaight-trust-level", "L5"}}},
			{name: "headers repeated with the same value", extra: [][2]string{{"x-knaight-organization", "acme"}},
				repeat: []string{"x-knaight-agent", "x-knaight-key-id", "x-knaight-organization"}},
			{name: "both header forms", repeat: []string{"x-sck-ans-id", "x-sck-timestamp", "x-sck-signature"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := toolCall(t, "deploy_app")
				r.ts = testNow()
				r.extra = c.extra
				signed := r.headers(t)
				for _, name := range c.repeat {
					v, _ := headerValue(signed, strings.Replace(name, "x-sck-ans-id", "x-knaight-agent", 1))
					if strings.HasPrefix(name, "x-sck-") && name != "x-sck-ans-id" {
						v, _ = headerValue(signed, strings.Replace(name, "x-sck-", "x-knaight-", 1))
					}
					r.repeat = append(r.repeat, [2]string{name, v})
				}
				res := g.send(r)
				expectAllowed(t, res)
				count := map[string]int{}
				for _, h := range res.forwarded {
					name := strings.ToLower(h[0])
					count[name]++
					if name == "authorization" || strings.HasPrefix(name, "x-sck-") {
						t.Errorf("client credential forwarded: %s: %s", h[0], h[1])
					}
				}
				want := map[string]string{"x-knaight-agent": fxAgent, "x-knaight-organization": "acme", "x-knaight-key-id": "up_1", HeaderTrustLevel: "L3"}
				for _, name := range []string{"x-knaight-agent", "x-knaight-timestamp", "x-knaight-signature", "x-knaight-key-id", "x-knaight-organization", HeaderDecisionID, HeaderTrustLevel} {
					if count[name] != 1 {
						t.Errorf("%s forwarded %d times\n%s", name, count[name], fmtHeaders(res.forwarded))
					}
					if v, _ := headerValue(res.forwarded, name); want[name] != "" && v != want[name] {
						t.Errorf("%s = %q, want %q", name, v, want[name])
					}
					delete(count, name)
				}
				for name := range count {
					if strings.HasPrefix(name, "x-knaight-") {
						t.Errorf("%s forwarded", name)
					}
				}
				h, err := sign.ParseHeaders(func(name string) []string {
					if v, ok := headerValue(res.forwarded, name); ok {
						return []string{v}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				req := sign.Request{Method: "POST", Target: "/mcp", BodySHA256: sign.BodyDigest(r.body), Agent: h.Agent, Timestamp: h.Timestamp}
				if err := (sign.Verifier{Now: testNow}).Verify(fxUpstream, req, h.Signature); err != nil {
					t.Errorf("upstream signature does not verify: %v", err)
				}
				if id, _ := headerValue(res.forwarded, HeaderDecisionID); !decisionIDPattern.MatchString(id) {
					t.Errorf("decision id %q", id)
				}
			})
		}
	})
}
