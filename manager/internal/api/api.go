// Package api is the manager's REST surface under /api/v1. Operations are
// declared with huma on chi, so the OpenAPI 3.1 document served at
// /api/v1/openapi.json is generated from the same declarations that decode,
// validate and route requests and cannot drift from them. Each handler
// follows one pipeline: size-limited body, strict schema decode, the
// service's own validation, the service call in a transaction, and one
// place (fail) that maps errors to RFC 9457 problem+json.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/notify"
	"github.com/knaight/knaight/manager/internal/seal"
	"github.com/knaight/knaight/manager/internal/snapshots"
	"github.com/knaight/knaight/manager/internal/tokens"
	sharedtoken "github.com/knaight/knaight/shared/token"
)

// Version is the API version reported in the OpenAPI document.
const Version = "1.0.0"

// DefaultMaxBodyBytes bounds request bodies of operations that set no limit
// of their own.
const DefaultMaxBodyBytes = 64 << 10

// Config is what the API needs from the process.
type Config struct {
	Pool   *pgxpool.Pool
	Sealer *seal.Sealer
	Log    *slog.Logger
	// Now is the clock; tests replace it to move time.
	Now func() time.Time
	// Issuer is the manager's public base URL: the "iss" of gateway tokens
	// and the OAuth authorization server's identifier.
	Issuer string
	// BootstrapToken enables POST /api/v1/bootstrap when non-empty.
	BootstrapToken string
	// KeyOverlap is how long an agent's previous HMAC key stays valid after
	// a rotation that does not name its own overlap.
	KeyOverlap time.Duration
	// WebhookWindow is the accepted timestamp skew of signed webhooks, and
	// how long their signatures are remembered against replays.
	WebhookWindow time.Duration
	// Changes wakes long polls when an organization's state changes. The
	// caller runs it (Hub.Run); without one, long polls end only when their
	// wait does.
	Changes *notify.Hub
	// GatewayMaxStaleness is how long a gateway may enforce a snapshot
	// without reaching the manager; 0 means DefaultGatewayMaxStaleness.
	GatewayMaxStaleness time.Duration
}

// DefaultGatewayMaxStaleness is the default of Config.GatewayMaxStaleness.
const DefaultGatewayMaxStaleness = 5 * time.Minute

// Server holds the API's dependencies.
type Server struct {
	Config
	api       huma.API
	snapshots *snapshots.Builder
	// signingKeys keeps the organizations' token signing keys once
	// unsealed, for every request of this process.
	signingKeys *tokens.OpenedKeys
	// issuer issues the tokens of concurrent requests together.
	issuer *tokens.Group
}

// New returns the manager's HTTP handler: health endpoints, the OpenAPI
// document and every /api/v1 operation.
func New(cfg Config) (http.Handler, *Server) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Changes == nil {
		cfg.Changes = notify.New(cfg.Log)
	}
	if cfg.GatewayMaxStaleness == 0 {
		cfg.GatewayMaxStaleness = DefaultGatewayMaxStaleness
	}
	router := chi.NewRouter()
	router.Use(middleware.RequestID, middleware.RealIP, requestLog(cfg.Log), recoverer(cfg.Log))

	hc := huma.DefaultConfig("Knaight manager API", Version)
	hc.Info.Description = "Agents and their ANS identity, trust signals and levels, MCP policies, and the audit ledger of the Knaight trust-gated MCP gateway."
	hc.OpenAPIPath = "/api/v1/openapi"
	hc.DocsPath = ""
	hc.SchemasPath = "/api/v1/schemas"
	// Bodies carry exactly their documented fields: no $schema links (the
	// schemas are in the OpenAPI document), and unknown query parameters
	// are refused like unknown body fields.
	hc.CreateHooks = nil
	hc.RejectUnknownQueryParameters = true
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"apiKey":            {Type: "http", Scheme: "bearer", Description: "An admin API key (knk_...), created at bootstrap or with POST /api/v1/api-keys."},
		"gatewayCredential": {Type: "http", Scheme: "bearer", Description: "A gateway credential (kngw....), shown once by POST /api/v1/gateways. Only the gateway API accepts it."},
	}
	hc.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaNamer)
	registerSchemas(hc.Components.Schemas)
	s := &Server{Config: cfg, signingKeys: &tokens.OpenedKeys{}}
	s.issuer = &tokens.Group{Service: s.tokens(), Pool: s.Pool}
	s.snapshots = s.newSnapshotBuilder()
	s.api = humachi.New(router, hc)
	s.api.UseMiddleware(s.authenticate)

	s.registerHealth(router)
	s.registerOAuth(router)
	s.registerBundleService(router)
	s.registerBootstrap()
	s.registerOrganization()
	s.registerKeys()
	s.registerAgents()
	s.registerTrust()
	s.registerPolicies()
	s.registerEnforcement()
	s.registerVerify()
	s.registerBundles()
	s.registerAudit()
	s.registerGateways()
	s.registerSnapshot(router)
	return router, s
}

// OpenAPI returns the generated OpenAPI document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

const permissionKey = "knaight-permission"

// register declares an operation that requires perm (nil = public).
func register[I, O any](s *Server, perm *auth.Permission, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	if op.MaxBodyBytes == 0 {
		op.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if perm != nil {
		op.Metadata = map[string]any{permissionKey: *perm}
		op.Security = []map[string][]string{{"apiKey": {}}}
		op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusForbidden)
	}
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, h)
}

func perm(p auth.Permission) *auth.Permission { return &p }

const gatewayKey = "knaight-gateway"

// registerGateway declares an operation of the gateway API: only a gateway
// credential authenticates it, never an API key.
func registerGateway[I, O any](s *Server, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	if op.MaxBodyBytes == 0 {
		op.MaxBodyBytes = DefaultMaxBodyBytes
	}
	op.Metadata = map[string]any{gatewayKey: true}
	op.Security = []map[string][]string{{"gatewayCredential": {}}}
	op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, h)
}

type gatewayPrincipalKey struct{}

// gatewayPrincipal returns the gateway that called a gateway operation.
func gatewayPrincipal(ctx context.Context) gateways.Authenticated {
	g, ok := ctx.Value(gatewayPrincipalKey{}).(gateways.Authenticated)
	if !ok {
		// registerGateway guarantees authentication; reaching here is a
		// programming error.
		panic("api: gateway operation without an authenticated gateway")
	}
	return g
}

// authenticateGateway resolves a request's gateway credential. Every
// failure is fault.ErrUnauthenticated, an API key included.
func (s *Server) authenticateGateway(ctx context.Context, header string) (gateways.Authenticated, error) {
	token, ok := sharedtoken.Bearer(header)
	if !ok {
		return gateways.Authenticated{}, fault.ErrUnauthenticated
	}
	return s.gateways().Authenticate(ctx, s.Pool, token, s.Now())
}

// authenticate resolves the bearer API key of operations that need one and
// refuses roles that lack the operation's permission; for gateway
// operations it resolves the gateway credential instead.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	if ctx.Operation().Metadata[gatewayKey] == true {
		g, err := s.authenticateGateway(ctx.Context(), ctx.Header("Authorization"))
		if errors.Is(err, fault.ErrUnauthenticated) {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="knaight-gateway"`)
			huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "a valid gateway credential is required (Authorization: Bearer kngw....)")
			return
		}
		if err != nil {
			s.Log.ErrorContext(ctx.Context(), "authenticate gateway", "err", err)
			huma.WriteErr(s.api, ctx, http.StatusInternalServerError, "internal error")
			return
		}
		next(huma.WithContext(ctx, context.WithValue(ctx.Context(), gatewayPrincipalKey{}, g)))
		return
	}
	want, ok := ctx.Operation().Metadata[permissionKey].(auth.Permission)
	if !ok {
		next(ctx)
		return
	}
	token, ok := sharedtoken.Bearer(ctx.Header("Authorization"))
	if !ok {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="knaight"`)
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing or malformed Authorization: Bearer <api key>")
		return
	}
	p, err := auth.Authenticate(ctx.Context(), s.Pool, token)
	if errors.Is(err, fault.ErrUnauthenticated) {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="knaight", error="invalid_token"`)
		huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "the API key is unknown or revoked")
		return
	}
	if err != nil {
		s.Log.ErrorContext(ctx.Context(), "authenticate", "err", err)
		huma.WriteErr(s.api, ctx, http.StatusInternalServerError, "internal error")
		return
	}
	if !p.Role.Allows(want) {
		huma.WriteErr(s.api, ctx, http.StatusForbidden, "role "+string(p.Role)+" may not perform "+ctx.Operation().OperationID)
		return
	}
	next(huma.WithContext(ctx, auth.WithPrincipal(ctx.Context(), p)))
}

// principal returns the request's authenticated caller.
func principal(ctx context.Context) auth.Principal {
	p, ok := auth.FromContext(ctx)
	if !ok {
		// register guarantees authentication for every operation that
		// calls this; reaching here is a programming error.
		panic("api: operation without authentication asked for a principal")
	}
	return p
}

// fail maps a service error to the response. It is the only place that
// decides status codes for service errors, and the only place 5xx errors
// are logged; their text never reaches the client.
func (s *Server) fail(ctx context.Context, err error) error {
	if inv, ok := fault.AsInvalid(err); ok {
		details := make([]error, len(inv.Errors))
		for i, f := range inv.Errors {
			loc := "body"
			if f.Field != "" {
				loc += "." + f.Field
			}
			details[i] = &huma.ErrorDetail{Location: loc, Message: f.Message, Value: f.Value}
		}
		return huma.Error422UnprocessableEntity("validation failed", details...)
	}
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return huma.Error404NotFound(err.Error())
	case errors.Is(err, fault.ErrConflict):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, fault.ErrForbidden):
		return huma.Error403Forbidden(err.Error())
	case errors.Is(err, fault.ErrUnauthenticated):
		return huma.Error401Unauthorized("unauthenticated")
	case errors.Is(err, context.Canceled):
		return huma.NewError(499, "client closed the request")
	}
	s.Log.ErrorContext(ctx, "request failed", "err", err)
	return huma.Error500InternalServerError("internal error")
}

// failIf is fail for handlers that return their output and error together:
// nil stays nil.
func (s *Server) failIf(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return s.fail(ctx, err)
}

// requestLog logs one line per request, without headers or bodies (they
// may carry keys).
func requestLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			next.ServeHTTP(ww, r)
			log.InfoContext(r.Context(), "request",
				"method", r.Method, "path", r.URL.Path, "status", ww.Status(),
				"bytes", ww.BytesWritten(), "duration_ms", float64(time.Since(start).Microseconds())/1000,
				"request_id", middleware.GetReqID(r.Context()))
		})
	}
}

// recoverer turns a panic into a logged 500 problem.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic in handler", "panic", v, "path", r.URL.Path)
					w.Header().Set("Content-Type", "application/problem+json")
					w.WriteHeader(http.StatusInternalServerError)
					w.Write([]byte(`{"title":"Internal Server Error","status":500,"detail":"internal error"}`))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
