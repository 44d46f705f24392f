# Tests of the Knaight policy library (knaight-policy-v1). Every expected
# message is the one the Go evaluator in shared/policy writes.
package knaight.policy_test

import data.knaight.policy

_deployer := {
	"id": "pol-1",
	"roleTemplate": "deployer",
	"environment": "production",
	"minTrustLevel": "L3",
	"minLoa": 2,
	"requiredScopes": ["mcp:tools", "deploy"],
	"allowedEndpoints": [
		"initialize",
		"notifications/*",
		"tools/list",
		"tools/call:deploy_*",
		"resources/read:file:///docs/*",
		"resources/read:https://w.example/a:b",
		"prompts/get:*",
	],
	"constraints": {
		"maxBodyBytes": 1048576,
		"timeWindows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}],
	},
}

# A policy without constraints, id or scopes.
_open := {
	"roleTemplate": "open",
	"environment": "development",
	"minTrustLevel": "L1",
	"minLoa": 1,
	"requiredScopes": [],
	"allowedEndpoints": ["*"],
	"constraints": {},
}

_policies := [_deployer, _open]

# 2026-11-23 is a Monday.
_input := {
	"roleTemplate": "deployer",
	"environment": "production",
	"trustLevel": "L3",
	"loa": 2,
	"scopes": ["mcp:tools", "deploy"],
	"method": "tools/call",
	"name": "deploy_web",
	"bodyBytes": 1024,
	"time": "2026-11-23T10:00:00Z",
}

_open_input := {
	"roleTemplate": "open",
	"environment": "development",
	"trustLevel": "L1",
	"loa": 1,
	"scopes": [],
	"method": "anything/at/all",
	"name": "",
	"bodyBytes": -1,
	"time": "2026-11-23T10:00:00Z",
}

_decide(doc) := d if {
	d := policy.decision with data.knaight.policies as _policies with input as doc
}

_with(patch) := object.union(_input, patch)

_subject := `role template "deployer" in production`

_deny(reason, msg) := {"allow": false, "reason": reason, "message": msg, "policyId": "pol-1", "missingScopes": ""}

# --- allowed -----------------------------------------------------------------

test_allowed if {
	_decide(_input) == {
		"allow": true,
		"reason": "allowed",
		"message": `role template "deployer" in production allows the request`,
		"policyId": "pol-1",
		"missingScopes": "",
	}
	policy.allow with data.knaight.policies as _policies with input as _input
}

test_allowed_without_id_scopes_or_constraints if {
	_decide(_open_input) == {
		"allow": true,
		"reason": "allowed",
		"message": `role template "open" in development allows the request`,
		"policyId": "",
		"missingScopes": "",
	}
}

test_semantics_version if policy.semantics_version == "knaight-policy-v1"

# --- rule 1: policy_missing ----------------------------------------------------

test_policy_missing_environment if {
	_decide(_with({"environment": "development"})) == {
		"allow": false,
		"reason": "policy_missing",
		"message": `no policy for role template "deployer" in environment "development"`,
		"policyId": "",
		"missingScopes": "",
	}
	not policy.allow with data.knaight.policies as _policies with input as _with({"environment": "development"})
}

test_policy_missing_role_is_case_sensitive if {
	_decide(_with({"roleTemplate": "Deployer"})).reason == "policy_missing"
}

test_policy_missing_without_data if {
	d := policy.decision with input as _input with data.knaight.policies as []
	d.reason == "policy_missing"
	d.policyId == ""
}

test_policy_missing_quotes_and_cuts_input if {
	long := concat("", [x | some _ in numbers.range(1, 130); x := "é"])
	d := _decide(_with({"roleTemplate": long, "environment": "a\"b\n"}))
	d.reason == "policy_missing"
	d.message == sprintf("no policy for role template %q in environment %s", [substring(long, 0, 128), `"a\"b\n"`])
}

test_policy_missing_beats_everything if {
	d := _decide({
		"roleTemplate": "nobody", "environment": "production", "trustLevel": "none", "loa": 0,
		"scopes": [], "method": "", "name": "", "bodyBytes": -1, "time": "2026-11-25T23:00:00Z",
	})
	d.reason == "policy_missing"
}

test_malformed_input_is_denied if {
	d := _decide({})
	d.allow == false
	d.reason == "policy_missing"
	not policy.allow with data.knaight.policies as _policies with input as {}
}

test_malformed_fields_never_allow if {
	not policy.allow with data.knaight.policies as _policies with input as object.remove(_input, ["time"])
	not policy.allow with data.knaight.policies as _policies with input as object.remove(_input, ["bodyBytes"])
	not policy.allow with data.knaight.policies as _policies with input as object.remove(_input, ["scopes"])
	_decide(object.remove(_input, ["scopes"])).missingScopes == "mcp:tools deploy"
	not policy.allow with data.knaight.policies as _policies with input as _with({"time": "yesterday"})
	_decide(_with({"time": "yesterday"})).reason == "constraint_violated"
}

# --- rule 2: trust level -------------------------------------------------------

test_trust_below if {
	_decide(_with({"trustLevel": "L2"})) == _deny("trust_below_threshold", sprintf("%s requires trust level L3; the agent has L2", [_subject]))
}

test_trust_equal_and_above if {
	_decide(_with({"trustLevel": "L3"})).allow
	_decide(_with({"trustLevel": "L5"})).allow
}

test_trust_none_and_unknown if {
	_decide(_with({"trustLevel": "none"})).message == sprintf("%s requires trust level L3; the agent has none", [_subject])
	_decide(_with({"trustLevel": "L9"})).message == sprintf("%s requires trust level L3; the agent has none", [_subject])
	_decide(_with({"trustLevel": "l4"})).reason == "trust_below_threshold"
}

test_trust_before_loa if {
	_decide(_with({"trustLevel": "L1", "loa": 0})).reason == "trust_below_threshold"
}

# --- rule 3: level of assurance ----------------------------------------------

test_loa_below if {
	_decide(_with({"loa": 1})) == _deny("loa_below_required", sprintf("%s requires LoA2; the token has LoA1", [_subject]))
}

test_loa_equal_and_above if {
	_decide(_with({"loa": 2})).allow
	_decide(_with({"loa": 4})).allow
}

test_loa_out_of_range_is_none if {
	_decide(_with({"loa": 0})).message == sprintf("%s requires LoA2; the token has none", [_subject])
	_decide(_with({"loa": 5})).message == sprintf("%s requires LoA2; the token has none", [_subject])
	_decide(_with({"loa": 200})).reason == "loa_below_required"
}

test_loa_before_scopes if {
	_decide(_with({"loa": 1, "scopes": []})).reason == "loa_below_required"
}

# --- rule 4: scopes --------------------------------------------------------------

test_scope_missing_one if {
	_decide(_with({"scopes": ["mcp:tools", "other"]})) == {
		"allow": false,
		"reason": "scope_missing",
		"message": sprintf("%s requires the scopes \"mcp:tools deploy\"; the token lacks \"deploy\"", [_subject]),
		"policyId": "pol-1",
		"missingScopes": "deploy",
	}
}

test_scope_missing_all_in_policy_order if {
	d := _decide(_with({"scopes": []}))
	d.missingScopes == "mcp:tools deploy"
	d.message == sprintf("%s requires the scopes \"mcp:tools deploy\"; the token lacks \"mcp:tools deploy\"", [_subject])
}

test_scopes_order_and_duplicates_do_not_matter if {
	_decide(_with({"scopes": ["deploy", "x", "deploy", "mcp:tools"]})).allow
}

test_scopes_are_not_split if {
	_decide(_with({"scopes": ["mcp:tools deploy"]})).missingScopes == "mcp:tools deploy"
}

test_scope_before_endpoint if {
	_decide(_with({"scopes": [], "method": "tools/delete"})).reason == "scope_missing"
}

# --- rule 5: endpoints -----------------------------------------------------------

test_named_method_without_name if {
	_decide(_with({"name": ""})) == _deny("endpoint_not_allowed", sprintf("%s does not allow tools/call without a tool name", [_subject]))
	_decide(_with({"method": "resources/read", "name": ""})).message == sprintf("%s does not allow resources/read without a resource URI", [_subject])
	_decide(_with({"method": "prompts/get", "name": ""})).message == sprintf("%s does not allow prompts/get without a prompt name", [_subject])
}

test_named_method_without_name_even_with_star if {
	d := policy.decision with data.knaight.policies as [_open] with input as object.union(_open_input, {"method": "tools/call"})
	d.reason == "endpoint_not_allowed"
	d.message == `role template "open" in development does not allow tools/call without a tool name`
}

test_named_method_with_other_name if {
	_decide(_with({"method": "resources/read", "name": "file:///etc/passwd"})) == _deny(
		"endpoint_not_allowed",
		sprintf("%s does not allow resources/read with resource URI \"file:///etc/passwd\"", [_subject]),
	)
}

test_other_method if {
	_decide(_with({"method": "tools/delete"})) == _deny("endpoint_not_allowed", sprintf("%s does not allow method \"tools/delete\"", [_subject]))
	_decide(_with({"method": ""})).message == sprintf("%s does not allow method \"\"", [_subject])
}

test_name_ignored_for_unnamed_methods if {
	_decide(_with({"method": "tools/list", "name": "whatever"})).allow
	_decide(_with({"method": "initialize", "name": ""})).allow
}

test_method_exact_and_case_sensitive if {
	_decide(_with({"method": "tools/list/x"})).reason == "endpoint_not_allowed"
	_decide(_with({"method": "Tools/list"})).reason == "endpoint_not_allowed"
}

test_method_glob if {
	_decide(_with({"method": "notifications/initialized"})).allow
	_decide(_with({"method": "notifications/"})).allow
	_decide(_with({"method": "notifications"})).reason == "endpoint_not_allowed"
}

test_name_glob if {
	_decide(_with({"name": "deploy_"})).allow
	_decide(_with({"name": "deploy_web/with:colons"})).allow
	_decide(_with({"name": "deploy"})).reason == "endpoint_not_allowed"
	_decide(_with({"name": "Deploy_web"})).message == sprintf("%s does not allow tools/call with tool name \"Deploy_web\"", [_subject])
}

test_uri_keeps_colons if {
	_decide(_with({"method": "resources/read", "name": "file:///docs/a/b.md"})).allow
	_decide(_with({"method": "resources/read", "name": "https://w.example/a:b"})).allow
	_decide(_with({"method": "resources/read", "name": "https://w.example/a:bc"})).reason == "endpoint_not_allowed"
}

test_prompt_star if {
	_decide(_with({"method": "prompts/get", "name": "x"})).allow
}

test_long_name_is_cut_in_message if {
	long := concat("", [x | some _ in numbers.range(1, 200); x := "n"])
	d := _decide(_with({"name": long}))
	d.message == sprintf("%s does not allow tools/call with tool name %q", [_subject, substring(long, 0, 128)])
}

_globs := {
	"roleTemplate": "g",
	"environment": "staging",
	"minTrustLevel": "L1",
	"minLoa": 1,
	"requiredScopes": [],
	"allowedEndpoints": ["a*b*c", "x.y", "tools/call:[a]?{b}\\*", "prompts/get:*ab*ab*", "*/*.*"],
	"constraints": {},
}

_glob_allows(method, name) if {
	d := policy.decision with data.knaight.policies as [_globs] with input as {
		"roleTemplate": "g", "environment": "staging", "trustLevel": "L1", "loa": 1, "scopes": [],
		"method": method, "name": name, "bodyBytes": 0, "time": "2026-11-23T10:00:00Z",
	}
	d.allow
}

test_glob_semantics if {
	_glob_allows("abc", "")
	_glob_allows("aXbYc", "")
	_glob_allows("abbc", "")
	not _glob_allows("acb", "")
	not _glob_allows("abcd", "")
	_glob_allows("x.y", "")
	not _glob_allows("xzy", "")
	_glob_allows("tools/call", "[a]?{b}\\")
	_glob_allows("tools/call", "[a]?{b}\\tail")
	not _glob_allows("tools/call", "a?{b}\\")
	_glob_allows("prompts/get", "abab")
	_glob_allows("prompts/get", "xxabyyab")
	not _glob_allows("prompts/get", "aba")
	not _glob_allows("prompts/get", "ab")
	_glob_allows("a/b.c", "")
	_glob_allows("/.", "")
	not _glob_allows("x/yz", "")
}

test_star_prefix_and_suffix_do_not_overlap if {
	p := object.union(_globs, {"allowedEndpoints": ["ab*ba"]})
	d := policy.decision with data.knaight.policies as [p] with input as {
		"roleTemplate": "g", "environment": "staging", "trustLevel": "L1", "loa": 1, "scopes": [],
		"method": "aba", "name": "", "bodyBytes": 0, "time": "2026-11-23T10:00:00Z",
	}
	d.reason == "endpoint_not_allowed"
}

test_endpoint_before_constraints if {
	_decide(_with({"method": "tools/delete", "bodyBytes": -1, "time": "2026-11-25T23:00:00Z"})).reason == "endpoint_not_allowed"
}

# --- rule 6: constraints ---------------------------------------------------------

test_body_limit_boundary if {
	_decide(_with({"bodyBytes": 1048576})).allow
	_decide(_with({"bodyBytes": 0})).allow
	_decide(_with({"bodyBytes": 1048577})) == _deny(
		"constraint_violated",
		sprintf("%s allows request bodies of at most 1048576 bytes; the request has 1048577", [_subject]),
	)
}

test_body_unknown if {
	_decide(_with({"bodyBytes": -1})).message == sprintf("%s allows request bodies of at most 1048576 bytes; the request has -1", [_subject])
}

test_body_before_time if {
	_decide(_with({"bodyBytes": 1048577, "time": "2026-11-25T10:15:00Z"})).message == sprintf(
		"%s allows request bodies of at most 1048576 bytes; the request has 1048577",
		[_subject],
	)
}

test_time_window_edges if {
	_decide(_with({"time": "2026-11-23T09:00:00Z"})).allow
	_decide(_with({"time": "2026-11-23T16:59:59.999999999Z"})).allow
	_decide(_with({"time": "2026-11-23T08:59:59.999Z"})) == _deny(
		"constraint_violated",
		sprintf("%s allows requests only during mon,tue 09:00-17:00 UTC; it is mon 08:59 UTC", [_subject]),
	)
	_decide(_with({"time": "2026-11-23T17:00:00Z"})).message == sprintf("%s allows requests only during mon,tue 09:00-17:00 UTC; it is mon 17:00 UTC", [_subject])
}

test_time_window_day if {
	_decide(_with({"time": "2026-11-24T10:00:00Z"})).allow
	_decide(_with({"time": "2026-11-25T10:15:00Z"})).message == sprintf("%s allows requests only during mon,tue 09:00-17:00 UTC; it is wed 10:15 UTC", [_subject])
}

_windows := {
	"id": "w",
	"roleTemplate": "w",
	"environment": "staging",
	"minTrustLevel": "L1",
	"minLoa": 1,
	"requiredScopes": [],
	"allowedEndpoints": ["*"],
	"constraints": {"timeWindows": [
		{"days": ["sat"], "start": "22:00", "end": "24:00"},
		{"start": "00:00", "end": "06:00"},
		{"days": ["fri", "wed"], "start": "12:30", "end": "12:31"},
	]},
}

_window_decision(t) := d if {
	d := policy.decision with data.knaight.policies as [_windows] with input as {
		"roleTemplate": "w", "environment": "staging", "trustLevel": "L1", "loa": 1, "scopes": [],
		"method": "ping", "name": "", "bodyBytes": 0, "time": t,
	}
}

test_several_windows if {
	# 2026-11-28 is a Saturday.
	_window_decision("2026-11-28T23:59:59Z").allow
	_window_decision("2026-11-28T22:00:00Z").allow
	not _window_decision("2026-11-27T23:00:00Z").allow
	_window_decision("2026-11-27T05:59:00Z").allow
	not _window_decision("2026-11-27T06:00:00Z").allow
	_window_decision("2026-11-27T12:30:59Z").allow
	not _window_decision("2026-11-27T12:31:00Z").allow
	_window_decision("2026-11-27T12:29:00Z").message == `role template "w" in staging allows requests only during sat 22:00-24:00 or daily 00:00-06:00 or fri,wed 12:30-12:31 UTC; it is fri 12:29 UTC`
}

test_time_out_of_opa_range_is_denied if {
	d := _window_decision("2300-01-01T00:00:00Z")
	d.reason == "constraint_violated"
	d.allow == false
}

test_time_unused_without_windows if {
	_decide(object.union(_open_input, {"time": "not a time"})).allow
}

test_time_before_1970 if {
	# 1900-01-01 was a Monday.
	_decide(_with({"time": "1900-01-01T16:59:00Z"})).allow
	_decide(_with({"time": "1900-01-01T17:00:00Z"})).reason == "constraint_violated"
}

# --- quoting ---------------------------------------------------------------------

test_subject_quotes_role_template if {
	p := object.union(_open, {"roleTemplate": "a \"b\" \\ c\u00a0é"})
	d := policy.decision with data.knaight.policies as [p] with input as object.union(_open_input, {"roleTemplate": "a \"b\" \\ c\u00a0é"})
	d.message == `role template "a \"b\" \\ c\u00a0é" in development allows the request`
}
