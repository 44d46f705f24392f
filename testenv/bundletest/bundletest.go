// Package bundletest tests the OPA policy library in the repository's
// bundles/ directory: it runs the library's own Rego tests with OPA's
// tester, and checks in a differential test that the library's decision
// (data.knaight.policy.decision) equals the decision of the Go evaluator in
// github.com/knaight/knaight/shared/policy, byte for byte, over generated
// policies and inputs.
//
// The package holds tests only, plus BundlesDir and AskOPA for the other
// packages that run OPA.
package bundletest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"

	"github.com/knaight/knaight/shared/policy"
)

// BundlesDir returns the repository's bundles/ directory, found relative to
// this source file (testenv/bundletest/bundletest.go), so that it does not
// depend on the working directory.
func BundlesDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", "..", "bundles")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "bundles")
}

// PolicyModulePath is the library's Rego module, relative to BundlesDir.
const PolicyModulePath = "knaight/policy/policy.rego"

// DecisionPath is the library's decision in OPA's data API.
const DecisionPath = "/v1/data/knaight/policy/decision"

// AskOPA asks the OPA server at baseURL for the library's decision on in,
// through client. It reads every answer to its end, so that a keep-alive
// connection is reused.
func AskOPA(client *http.Client, baseURL string, in *policy.Input) (policy.Decision, error) {
	body, err := json.Marshal(struct {
		Input *policy.Input `json:"input"`
	}{in})
	if err != nil {
		return policy.Decision{}, err
	}
	resp, err := client.Post(baseURL+DecisionPath, "application/json", bytes.NewReader(body))
	if err != nil {
		return policy.Decision{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return policy.Decision{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return policy.Decision{}, fmt.Errorf("OPA answered %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		Result *policy.Decision `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return policy.Decision{}, fmt.Errorf("OPA's answer: %w: %s", err, raw)
	}
	if out.Result == nil {
		return policy.Decision{}, fmt.Errorf("OPA has no decision (is the library loaded?): %s", raw)
	}
	return *out.Result, nil
}
