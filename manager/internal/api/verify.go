package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/enforce"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/orgs"
	"github.com/knaight/knaight/shared/sign"
)

// verifyInput takes the raw call: its headers decide the mode, and in the
// direct mode the body is signed bytes that must not be re-encoded.
type verifyInput struct {
	RawBody []byte
	headers http.Header
	method  string
	target  string
}

// Resolve captures every header (repeated ones included, so ambiguity is
// caught) and the request target.
func (in *verifyInput) Resolve(ctx huma.Context) []error {
	in.headers = http.Header{}
	ctx.EachHeader(func(name, value string) { in.headers.Add(name, value) })
	in.method = ctx.Method()
	u := ctx.URL()
	in.target = u.RequestURI()
	return nil
}

// describedCall is the JSON description of a signed request, for callers
// that verify a request they received rather than forwarding it.
type describedCall struct {
	Method     string            `json:"method"`
	Target     string            `json:"target"`
	Body       *string           `json:"body"`
	BodyBase64 *string           `json:"bodyBase64"`
	BodySHA256 *string           `json:"bodySha256"`
	Headers    map[string]string `json:"headers"`
}

func (d describedCall) call() (enforce.Call, error) {
	var inv fault.Invalid
	if d.Method == "" {
		inv.Add("method", "required: the signed request's HTTP method", nil)
	}
	if d.Target == "" || d.Target[0] != '/' {
		inv.Add("target", "required: the signed request's path and query, starting with /", d.Target)
	}
	c := enforce.Call{Method: d.Method, Target: d.Target, Mode: "described", Body: sign.BodyDigest(nil)}
	given := 0
	if d.Body != nil {
		given++
		c.Body = sign.BodyDigest([]byte(*d.Body))
	}
	if d.BodyBase64 != nil {
		given++
		raw, err := base64.StdEncoding.DecodeString(*d.BodyBase64)
		if err != nil {
			inv.Add("bodyBase64", "not standard base64", nil)
		}
		c.Body = sign.BodyDigest(raw)
	}
	if d.BodySHA256 != nil {
		given++
		raw, err := hex.DecodeString(*d.BodySHA256)
		if err != nil || len(raw) != 32 {
			inv.Add("bodySha256", "must be 64 hexadecimal digits", *d.BodySHA256)
		}
		copy(c.Body[:], raw)
	}
	if given > 1 {
		inv.Add("body", "give at most one of body, bodyBase64 and bodySha256", nil)
	}
	if len(d.Headers) == 0 {
		inv.Add("headers", "required: the signed request's X-Knaight-* (or X-SCK-*) headers", nil)
	}
	h := http.Header{}
	for k, v := range d.Headers {
		h.Add(k, v)
	}
	c.Headers = h.Values
	return c, inv.Err()
}

type verifyOutput struct {
	Body enforce.Decision
}

func (s *Server) registerVerify() {
	register(s, perm(auth.Read), huma.Operation{
		OperationID: "verify-signed-request", Method: http.MethodPost, Path: "/api/v1/enforcement/verify",
		Summary: "Verify an agent's (or the gateway's) HMAC-signed request",
		Description: "For upstream services that cannot import shared/sign. Two forms:\n\n" +
			"* direct (Milestone 3): send the signed request itself here, with its X-Knaight-Agent/-Timestamp/-Signature " +
			"(or X-SCK-ANS-ID/-Timestamp/-Signature) headers; the signature must cover POST, this path and the body.\n" +
			"* described: send a JSON object {method, target, body | bodyBase64 | bodySha256, headers{}} describing the request you received.\n\n" +
			"Checks the ANS identity pinned to the agent's HMAC keys, that the agent is ACTIVE, the timestamp window (5 minutes), " +
			"the signature, and that the signature is accepted only once. Every decision is recorded as an ENFORCEMENT_CALL_* ledger event. " +
			"A refused request answers 200 with valid=false and the reason.",
		Tags:             []string{"Request signatures"},
		SkipValidateBody: true,
	}, func(ctx context.Context, in *verifyInput) (*verifyOutput, error) {
		p := principal(ctx)
		var call enforce.Call
		if in.headers.Get(sign.HeaderSignature) != "" || in.headers.Get(sign.AliasHeaderSignature) != "" {
			call = enforce.Call{Method: in.method, Target: in.target, Body: sign.BodyDigest(in.RawBody), Headers: in.headers.Values, Mode: "direct"}
		} else {
			var d describedCall
			dec := json.NewDecoder(bytes.NewReader(in.RawBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				var syntax *json.SyntaxError
				if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return nil, huma.Error400BadRequest("the body is not JSON: without signature headers it must describe the signed request")
				}
				return nil, s.fail(ctx, fault.Field("", "without signature headers the body must describe the signed request: "+err.Error(), nil))
			}
			var err error
			if call, err = d.call(); err != nil {
				return nil, s.fail(ctx, err)
			}
		}
		var out verifyOutput
		err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			o, err := orgs.Get(ctx, tx, p.OrganizationID)
			if err != nil {
				return err
			}
			v := enforce.Verifier{Keys: &agents.Keys{Sealer: s.Sealer}}
			out.Body, err = v.Verify(ctx, tx, o.ID, o.Slug, call, p.Actor(), s.Now())
			return err
		})
		return &out, s.failIf(ctx, err)
	})
}
