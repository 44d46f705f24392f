// Package ans is the manager's view of the Agent Name Service (ANS): the
// names agents are known by, the lifecycle of an agent's registration, and
// the Registry interface the rest of the manager stores registrations
// through.
//
// ANS (draft-narajala-courtney-ansv2) gives every agent a versioned,
// DNS-anchored name such as ans://v1.0.0.agent.example.com, and a registry
// that binds the name to the agent and tracks whether the binding is still
// good. The manager acts as the ANS registry for its own agents: it ships a
// built-in Registry on its own database, and an external ANS registry can be
// put behind the same interface. Either way the gateway lets an agent call
// only while its registration is ACTIVE.
//
// This package is pure: parsing and formatting names (both the v2 form and
// the older draft-00 form, see Name), the status state machine (Status,
// Transition) and the Registry contract. It does no I/O.
package ans
