# Knaight MCP policy evaluation, semantics version knaight-policy-v1.
#
# This library restates, in Rego, the normative semantics of docs/policy.md,
# which the Go evaluator (Compile and (*Set).Evaluate in
# github.com/knaight/knaight/shared/policy) implements. For every input the
# filter can build, data.knaight.policy.decision is the same document as the
# Go Decision, byte for byte: allow, reason, message, policyId and
# missingScopes. A differential test (testenv/bundletest) checks this over
# generated policies and inputs.
#
# Data:  data.knaight.policies, an array of compiled (valid) policies in the
#        JSON form written by policy.Policy.MarshalJSON.
# Input: the document written by policy.Input.MarshalJSON (docs/policy.md,
#        section 3).
#
# Deny by default: decision is defined for every input. Inputs the filter
# never builds (keys missing, wrong JSON types, an unparsable time) are
# denied too; their messages are this library's own.
package knaight.policy

# semantics_version names the semantics this library implements; it equals
# policy.SemanticsVersion in Go.
semantics_version := "knaight-policy-v1"

# allow is decision.allow, for sidecars that only need a boolean.
default allow := false

allow := decision.allow

# decision is the decision document of docs/policy.md, section 4.
default decision := {
	"allow": false,
	"reason": "policy_missing",
	"message": "denied: the input document does not have the form of docs/policy.md",
	"policyId": "",
	"missingScopes": "",
}

# Rule 1: a policy exists.
decision := {
	"allow": false,
	"reason": "policy_missing",
	"message": sprintf("no policy for role template %.128q in environment %.128q", [input.roleTemplate, input.environment]),
	"policyId": "",
	"missingScopes": "",
} if {
	not _has_policy
	is_string(input.roleTemplate)
	is_string(input.environment)
}

# Rules 2 to 7, for the one policy found.
decision := {
	"allow": v.reason == "allowed",
	"reason": v.reason,
	"message": v.message,
	"policyId": object.get(_policy, "id", ""),
	"missingScopes": v.missing,
} if {
	v := _verdict
}

# ---------------------------------------------------------------------------
# Rule 1: the policy with the input's role template and environment. Compile
# rejects two policies for the same pair; should the data hold several
# different ones anyway, none is used and the request is denied.

_matching contains p if {
	some p in data.knaight.policies
	p.roleTemplate == input.roleTemplate
	p.environment == input.environment
}

_has_policy if count(_matching) == 1

_policy := p if {
	_has_policy
	some p in _matching
}

# S of docs/policy.md, section 5.
_subject := sprintf("role template %q in %s", [_policy.roleTemplate, _policy.environment])

# ---------------------------------------------------------------------------
# Rules 2 to 7, in order: the first that fails decides.

_verdict := {"reason": "trust_below_threshold", "message": msg, "missing": ""} if {
	_trust_rank(input.trustLevel) < _trust_rank(_policy.minTrustLevel)
	msg := sprintf("%s requires trust level %s; the agent has %s", [_subject, _policy.minTrustLevel, _trust_text])
} else := {"reason": "loa_below_required", "message": msg, "missing": ""} if {
	_loa_rank(input.loa) < _policy.minLoa
	msg := sprintf("%s requires LoA%d; the token has %s", [_subject, _policy.minLoa, _loa_text])
} else := {"reason": "scope_missing", "message": msg, "missing": missing} if {
	count(_missing_scopes) > 0
	missing := concat(" ", _missing_scopes)
	msg := sprintf("%s requires the scopes %q; the token lacks %q", [_subject, concat(" ", _policy.requiredScopes), missing])
} else := {"reason": "endpoint_not_allowed", "message": msg, "missing": ""} if {
	# Rule 5.1: a named method without a name.
	noun := _nouns[input.method]
	input.name == ""
	msg := sprintf("%s does not allow %s without a %s", [_subject, input.method, noun])
} else := {"reason": "endpoint_not_allowed", "message": msg, "missing": ""} if {
	# Rule 5.2, named method.
	not _endpoint_allowed
	noun := _nouns[input.method]
	msg := sprintf("%s does not allow %s with %s %.128q", [_subject, input.method, noun, input.name])
} else := {"reason": "endpoint_not_allowed", "message": msg, "missing": ""} if {
	# Rule 5.2, any other method.
	not _endpoint_allowed
	msg := sprintf("%s does not allow method %.128q", [_subject, input.method])
} else := {"reason": "constraint_violated", "message": msg, "missing": ""} if {
	# Rule 6.1: body size.
	not _body_ok
	msg := sprintf("%s allows request bodies of at most %d bytes; the request has %d", [_subject, _max_body, input.bodyBytes])
} else := {"reason": "constraint_violated", "message": msg, "missing": ""} if {
	# Rule 6.2: time windows.
	not _time_ok
	[day, hour, minute] := _clock
	msg := sprintf("%s allows requests only during %s UTC; it is %s %02d:%02d UTC", [_subject, _windows_text, day, hour, minute])
} else := {"reason": "constraint_violated", "message": msg, "missing": ""} if {
	# Not an input the filter builds: windows apply but the time is not
	# an RFC 3339 time OPA can represent (years 1678 to 2261).
	not _time_ok
	msg := sprintf("%s allows requests only during %s UTC; the request time %.128q is not valid", [_subject, _windows_text, input.time])
} else := {"reason": "allowed", "message": sprintf("%s allows the request", [_subject]), "missing": ""} if {
	# Every check again, positively, so that an input of the wrong shape
	# (which makes a check undefined rather than false) is never allowed.
	_trust_rank(input.trustLevel) >= _trust_rank(_policy.minTrustLevel)
	_loa_rank(input.loa) >= _policy.minLoa
	count(_missing_scopes) == 0
	_endpoint_allowed
	_body_ok
	_time_ok
}

# ---------------------------------------------------------------------------
# Rule 2: trust level. Anything but "L1" .. "L5" is rank 0, shown as "none".

_trust_ranks := {"L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5}

_trust_rank(level) := object.get(_trust_ranks, level, 0)

_trust_text := input.trustLevel if _trust_ranks[input.trustLevel]

else := "none"

# Rule 3: level of assurance. Anything but 1, 2, 3, 4 is rank 0, "none".

_loa_rank(loa) := loa if loa in {1, 2, 3, 4}

else := 0

_loa_text := sprintf("LoA%d", [input.loa]) if input.loa in {1, 2, 3, 4}

else := "none"

# Rule 4: the required scopes the token lacks, in policy order.

_missing_scopes := [s |
	some s in _policy.requiredScopes
	not s in _held_scopes
]

# A token without a scope list (never built by the filter) holds none.
_held_scopes := input.scopes if is_array(input.scopes)

else := []

# ---------------------------------------------------------------------------
# Rule 5: endpoints.

# The named methods and the nouns messages use for their names.
_nouns := {
	"tools/call": "tool name",
	"resources/read": "resource URI",
	"prompts/get": "prompt name",
}

_endpoint_allowed if {
	some pattern in _policy.allowedEndpoints
	_pattern_matches(pattern)
}

# A pattern is <method> or <method>:<name>, split at the first ':'.
_pattern_matches(pattern) if {
	not contains(pattern, ":")
	_glob(pattern, input.method)
}

_pattern_matches(pattern) if {
	i := indexof(pattern, ":")
	i >= 0
	_glob(substring(pattern, 0, i), input.method)
	_glob(substring(pattern, i + 1, -1), input.name)
}

# _glob(pattern, s): '*' matches any run of characters ('/' and ':' and the
# empty run included), every other character only itself, anchored at both
# ends. glob.match is not used: it gives ?, [, {, \ special meaning and its
# default delimiter '.' stops '*'.
_glob(pattern, s) if {
	not contains(pattern, "*")
	pattern == s
}

# One star: a prefix and a suffix that do not overlap.
_glob(pattern, s) if {
	pieces := split(pattern, "*")
	count(pieces) == 2
	startswith(s, pieces[0])
	endswith(s, pieces[1])
	count(s) >= count(pieces[0]) + count(pieces[1])
}

# More stars: the pieces quoted as regular expression literals and joined
# with ".*", matched against the whole string (RE2, linear time).
_glob(pattern, s) if {
	pieces := split(pattern, "*")
	count(pieces) > 2
	startswith(s, pieces[0])
	endswith(s, pieces[count(pieces) - 1])
	quoted := [strings.replace_n(_regex_meta, p) | some p in pieces]
	regex.match(concat("", ["^(?s:", concat(".*", quoted), ")$"]), s)
}

_regex_meta := {
	"\\": "\\\\",
	".": "\\.",
	"+": "\\+",
	"?": "\\?",
	"(": "\\(",
	")": "\\)",
	"|": "\\|",
	"[": "\\[",
	"]": "\\]",
	"{": "\\{",
	"}": "\\}",
	"^": "\\^",
	"$": "\\$",
}

# ---------------------------------------------------------------------------
# Rule 6: constraints.

_max_body := object.get(_policy, ["constraints", "maxBodyBytes"], 0)

_body_ok if _max_body == 0

_body_ok if {
	_max_body > 0
	input.bodyBytes >= 0
	input.bodyBytes <= _max_body
}

_windows := object.get(_policy, ["constraints", "timeWindows"], [])

_time_ok if count(_windows) == 0

_time_ok if {
	[day, hour, minute] := _clock
	m := (hour * 60) + minute
	some w in _windows
	_in_window(w, day, m)
}

# _clock is [day, hour, minute] of input.time in UTC, day as "mon" .. "sun".
_clock := [day, hour, minute] if {
	ns := time.parse_rfc3339_ns(input.time)
	[hour, minute, _] := time.clock(ns)
	day := lower(substring(time.weekday(ns), 0, 3))
}

_in_window(w, day, m) if {
	_day_ok(object.get(w, "days", []), day)
	_minutes(w.start) <= m
	m < _minutes(w.end)
}

_day_ok(days, _) if count(days) == 0

_day_ok(days, day) if day in days

# "HH:MM" in minutes since midnight; "24:00" is 1440.
_minutes(hhmm) := (to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))

# The windows text of docs/policy.md, section 9.
_windows_text := concat(" or ", [_window_text(w) | some w in _windows])

_window_text(w) := sprintf("%s %s-%s", [_days_text(object.get(w, "days", [])), w.start, w.end])

_days_text(days) := "daily" if count(days) == 0

else := concat(",", days)
