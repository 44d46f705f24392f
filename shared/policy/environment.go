package policy

import (
	"errors"
	"fmt"
)

// ErrInvalidEnvironment is returned (wrapped) by ParseEnvironment. The caller
// must reject the input and offer the values of Environments(); guessing the
// intended environment could apply a development policy to production.
var ErrInvalidEnvironment = errors.New("invalid environment")

// Environment is the deployment stage a policy applies to. Policies are keyed
// by role template and environment, so the same role can be granted more in
// development than in production.
type Environment string

// The environments Knaight knows. The set is closed on purpose: an unknown
// environment would have no policy and so deny everything, which is better
// reported when the policy is written than discovered at request time.
const (
	Development Environment = "development"
	Staging     Environment = "staging"
	Production  Environment = "production"
)

// Environments returns every valid environment, least to most sensitive, for
// listing choices in APIs and error messages. The slice is a fresh copy.
func Environments() []Environment {
	return []Environment{Development, Staging, Production}
}

// ParseEnvironment accepts exactly the lower-case names of Environments().
// It does not fold case or trim space, so that the stored value is always the
// canonical one the evaluator and the OPA bundle compare against.
func ParseEnvironment(s string) (Environment, error) {
	e := Environment(s)
	if !e.Valid() {
		return "", fmt.Errorf("%w %q: want one of development, staging, production", ErrInvalidEnvironment, s)
	}
	return e, nil
}

// Valid reports whether e is one of Environments(). Environment is a string
// type, so values decoded from JSON or built by conversion must be checked.
func (e Environment) Valid() bool {
	switch e {
	case Development, Staging, Production:
		return true
	}
	return false
}
