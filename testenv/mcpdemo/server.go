// Package mcpdemo is the demo upstream of the test environment: an MCP
// server built with the official MCP Go SDK that accepts only requests the
// Knaight gateway signed for it (shared/sign), as a real upstream behind the
// gateway would. It also has SigningTransport, the client side an AI agent
// uses to call through the gateway.
//
// The server has two harmless tools (echo, time), one privileged tool
// (deploy: the policy decides who may call it), the resource demo://readme
// and the prompt summarize. It serves the streamable HTTP transport with
// sessions (Mcp-Session-Id, the initialize handshake and SSE responses) for
// clients on 2025-06-18 and 2025-11-25, and the sessionless 2026-07-28
// protocol (server/discover) that SDK v1.8.0 clients try first.
package mcpdemo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/knaight/knaight/shared/sign"
)

// Names of what the server offers, for tests and policies.
const (
	ToolEcho       = "echo"
	ToolTime       = "time"
	ToolDeploy     = "deploy"
	ResourceReadme = "demo://readme"
	PromptSummary  = "summarize"
)

// MaxBodyBytes bounds a request body: the signature check reads the whole
// body to hash it before the SDK sees it.
const MaxBodyBytes = 4 << 20

// sessionTimeout closes sessions their client abandoned without DELETE, so
// that a long `make run` does not accumulate them.
const sessionTimeout = 30 * time.Minute

// Options configure NewHandler.
type Options struct {
	// UpstreamKeys maps an upstream key id to its HMAC secret: the
	// gateway's upstream key, from POST /api/v1/gateway/upstream-keys or the
	// gateway's registration. A request must be signed by one of them;
	// several overlap during a rotation.
	UpstreamKeys map[string][]byte
	// Skew is the accepted distance of a signature's timestamp from the
	// server's clock; zero means DefaultSkew.
	Skew time.Duration
	// Logger receives refusals and the SDK's errors; nil discards them.
	Logger *slog.Logger
}

// Validate reports the first unusable field.
func (o Options) Validate() error {
	if len(o.UpstreamKeys) == 0 {
		return errors.New("mcpdemo: UpstreamKeys: at least one upstream key is required")
	}
	for kid, key := range o.UpstreamKeys {
		if kid == "" {
			return errors.New("mcpdemo: UpstreamKeys: empty key id")
		}
		if len(key) < sign.MinKeySize {
			return fmt.Errorf("mcpdemo: UpstreamKeys[%q]: key is %d bytes, want at least %d", kid, len(key), sign.MinKeySize)
		}
	}
	if o.Skew < 0 {
		return fmt.Errorf("mcpdemo: Skew: %v is negative", o.Skew)
	}
	return nil
}

// NewHandler returns the demo MCP server's streamable HTTP handler, at any
// path, behind the gateway signature check (see requireGateway). It panics
// if o does not validate: call Validate first on configuration read at run
// time.
func NewHandler(o Options) http.Handler {
	if err := o.Validate(); err != nil {
		panic(err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	server := newServer(logger)
	getServer := func(*http.Request) *mcp.Server { return server }
	opts := mcp.StreamableHTTPOptions{
		Logger:         logger,
		SessionTimeout: sessionTimeout,
		// The SDK refuses a non-localhost Host on a loopback listener, against
		// DNS rebinding from a browser. Every request here is signed by the
		// gateway, which a browser cannot do, and the gateway forwards its
		// client's Host: the check would only refuse the gateway.
		DisableLocalhostProtection: true,
	}
	withSessions := mcp.NewStreamableHTTPHandler(getServer, &opts)
	opts.Stateless = true
	sessionless := mcp.NewStreamableHTTPHandler(getServer, &opts)
	// SDK v1.8.0 serves the protocol revisions with sessions (up to
	// 2025-11-25) only in stateful mode and the sessionless 2026-07-28 only
	// in stateless mode; a stateful handler answers server/discover with the
	// older revisions alone, downgrading every new client. A client names its
	// revision in Mcp-Protocol-Version on every request after the handshake,
	// and on server/discover itself. Dates in this form compare as strings.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Protocol-Version") >= sessionlessRevision {
			sessionless.ServeHTTP(w, r)
			return
		}
		withSessions.ServeHTTP(w, r)
	})
	return requireGateway(o, logger, h)
}

// sessionlessRevision is the first MCP revision without sessions and the
// initialize handshake.
const sessionlessRevision = "2026-07-28"

func newServer(logger *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "knaight-mcp-demo", Title: "Knaight demo upstream", Version: "1.0.0"}, &mcp.ServerOptions{
		Logger:       logger,
		Instructions: "Demo upstream behind the Knaight gateway. echo and time are harmless; deploy is privileged.",
	})
	no := false
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolEcho,
		Description: "Returns its text argument and who called.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, echo)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolTime,
		Description: "Returns the current time in UTC.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no},
	}, now)
	yes := true
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolDeploy,
		Description: "Deploys a version of a service (privileged; a demo: nothing is deployed). Reports progress when asked.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes, IdempotentHint: true, OpenWorldHint: &no},
	}, deploy)
	s.AddResource(&mcp.Resource{
		URI:         ResourceReadme,
		Name:        "readme",
		Title:       "About this server",
		MIMEType:    "text/markdown",
		Description: "What the demo upstream offers.",
	}, readme)
	s.AddPrompt(&mcp.Prompt{
		Name:        PromptSummary,
		Description: "Asks for a short summary of a text.",
		Arguments:   []*mcp.PromptArgument{{Name: "text", Description: "the text to summarize", Required: true}},
	}, summarize)
	return s
}

// EchoInput is the echo tool's input.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

// EchoOutput is the echo tool's structured result: the text and who called.
type EchoOutput struct {
	Text       string `json:"text"`
	CalledBy   string `json:"calledBy"`
	TrustLevel string `json:"trustLevel,omitempty"`
	DecisionID string `json:"decisionId"`
}

func echo(ctx context.Context, req *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
	c := callerOf(ctx, req.Extra)
	out := EchoOutput{Text: in.Text, CalledBy: c.Agent, TrustLevel: c.TrustLevel, DecisionID: c.DecisionID}
	return textResult(fmt.Sprintf("%s\n\ncalled by %s (trust level %s, decision %s)", in.Text, c.Agent, c.TrustLevel, c.DecisionID)), out, nil
}

// TimeOutput is the time tool's structured result.
type TimeOutput struct {
	UTC string `json:"utc" jsonschema:"the current time, RFC 3339 in UTC"`
}

func now(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, TimeOutput, error) {
	t := time.Now().UTC().Format(time.RFC3339Nano)
	return textResult(t), TimeOutput{UTC: t}, nil
}

// DeployInput is the deploy tool's input.
type DeployInput struct {
	Service string `json:"service" jsonschema:"the service to deploy"`
	Version string `json:"version" jsonschema:"the version to deploy"`
}

// DeployOutput is the deploy tool's structured result.
type DeployOutput struct {
	Service    string `json:"service"`
	Version    string `json:"version"`
	DeployedBy string `json:"deployedBy"`
	DecisionID string `json:"decisionId"`
}

// deploySteps are the progress notifications deploy sends when the call
// carries a progress token; on the streamable transport they arrive as SSE
// events before the result.
var deploySteps = []string{"building", "rolling out", "healthy"}

func deploy(ctx context.Context, req *mcp.CallToolRequest, in DeployInput) (*mcp.CallToolResult, DeployOutput, error) {
	if in.Service == "" || in.Version == "" {
		return nil, DeployOutput{}, errors.New("service and version must not be empty")
	}
	if token := req.Params.GetProgressToken(); token != nil {
		for i, step := range deploySteps {
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token,
				Progress:      float64(i + 1),
				Total:         float64(len(deploySteps)),
				Message:       step,
			})
			if err != nil {
				return nil, DeployOutput{}, fmt.Errorf("report progress: %w", err)
			}
		}
	}
	c := callerOf(ctx, req.Extra)
	out := DeployOutput{Service: in.Service, Version: in.Version, DeployedBy: c.Agent, DecisionID: c.DecisionID}
	return textResult(fmt.Sprintf("deployed %s %s", in.Service, in.Version)), out, nil
}

const readmeText = `# Knaight demo upstream

An MCP server that accepts only requests the Knaight gateway signed.

- echo: returns its text and who called (harmless)
- time: the current time in UTC (harmless)
- deploy: pretends to deploy a service version (privileged)
- summarize: a prompt asking for a short summary
`

func readme(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/markdown", Text: readmeText}}}, nil
}

func summarize(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	text := req.Params.Arguments["text"]
	if text == "" {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: `prompt summarize: the argument "text" is required`}
	}
	return &mcp.GetPromptResult{
		Description: "A short summary",
		Messages: []*mcp.PromptMessage{{
			Role:    "user",
			Content: &mcp.TextContent{Text: "Summarize the following text in at most three sentences:\n\n" + text},
		}},
	}, nil
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
