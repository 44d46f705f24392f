package orgs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/policies"
	"github.com/knaight/knaight/shared/policy"
)

// readEndpoints are the MCP methods that only discover and read, and the
// transport's own: opening the server's event stream (GET) and ending the
// session (DELETE), which the filter judges as transport/stream and
// transport/close.
var readEndpoints = []string{
	"initialize", "ping", "notifications/*", "transport/stream", "transport/close",
	"tools/list", "resources/list", "resources/templates/list", "resources/read", "prompts/list", "prompts/get",
}

// baseline is the seeded role template catalogue: per environment, the
// minimum trust level and level of assurance rise with the blast radius.
var baseline = []struct {
	name, description string
	scopes            []string
	endpoints         []string
	levels            map[policy.Environment][2]uint8 // trust level, LoA
	maxBodyBytes      int64
}{
	{
		name: "observer", description: "Discovers and reads: lists tools, reads resources and prompts, calls no tool.",
		scopes: []string{"mcp:read"}, endpoints: readEndpoints,
		levels: map[policy.Environment][2]uint8{policy.Development: {1, 1}, policy.Staging: {2, 1}, policy.Production: {2, 2}},
	},
	{
		name: "assistant", description: "Reads and calls tools on behalf of a user.",
		scopes: []string{"mcp:read", "mcp:invoke"}, endpoints: append(append([]string{}, readEndpoints...), "tools/call", "completion/complete"),
		levels: map[policy.Environment][2]uint8{policy.Development: {2, 1}, policy.Staging: {2, 2}, policy.Production: {3, 2}},
	},
	{
		name: "privileged", description: "Calls privileged tools (deployments, access changes); held to the highest trust.",
		scopes: []string{"mcp:read", "mcp:invoke", "mcp:privileged"}, endpoints: append(append([]string{}, readEndpoints...), "tools/call", "completion/complete", "logging/setLevel"),
		levels:       map[policy.Environment][2]uint8{policy.Development: {3, 2}, policy.Staging: {4, 3}, policy.Production: {4, 3}},
		maxBodyBytes: 1 << 20,
	},
}

// seed creates an organization's baseline role templates and one MCP
// policy per template and environment, each recorded in the ledger.
func seed(ctx context.Context, tx pgx.Tx, o Organization, actor string, now time.Time) error {
	for _, b := range baseline {
		t, err := agents.CreateRoleTemplate(ctx, tx, o.ID, agents.RoleTemplateInput{Name: b.name, Description: b.description}, actor, now)
		if err != nil {
			return fmt.Errorf("seed role template %s: %w", b.name, err)
		}
		for _, env := range policy.Environments() {
			lv := b.levels[env]
			in := policies.Input{
				RoleTemplateID: t.ID, Environment: env, MinTrustLevel: policy.TrustLevel(lv[0]), MinLoA: policy.LoA(lv[1]),
				RequiredScopes: b.scopes, AllowedEndpoints: b.endpoints,
			}
			if env == policy.Production {
				in.Constraints.MaxBodyBytes = b.maxBodyBytes
			}
			if _, err := policies.Create(ctx, tx, o.ID, in, actor, now); err != nil {
				return fmt.Errorf("seed %s policy of %s: %w", env, b.name, err)
			}
		}
	}
	return nil
}
