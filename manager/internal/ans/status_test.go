package ans

import (
	"errors"
	"strings"
	"testing"
)

var allStatuses = []Status{StatusPending, StatusActive, StatusSuspended, StatusDeprecated, StatusRevoked, StatusExpired}

// TestTransitionTable checks every from × to pair, including unknown
// statuses, against the lifecycle table written out independently here.
func TestTransitionTable(t *testing.T) {
	allowed := map[[2]Status]bool{
		{StatusPending, StatusActive}:     true,
		{StatusPending, StatusRevoked}:    true,
		{StatusActive, StatusSuspended}:   true,
		{StatusActive, StatusDeprecated}:  true,
		{StatusActive, StatusRevoked}:     true,
		{StatusActive, StatusExpired}:     true,
		{StatusSuspended, StatusActive}:   true,
		{StatusSuspended, StatusRevoked}:  true,
		{StatusSuspended, StatusExpired}:  true,
		{StatusDeprecated, StatusRevoked}: true,
		{StatusDeprecated, StatusExpired}: true,
	}
	statuses := append(append([]Status{}, allStatuses...), "", "active", "DELETED")
	for _, from := range statuses {
		for _, to := range statuses {
			want := allowed[[2]Status{from, to}]
			t.Run(string(from)+"_to_"+string(to), func(t *testing.T) {
				if got := CanTransition(from, to); got != want {
					t.Fatalf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
				}
				err := Transition(from, to, "because")
				switch {
				case want && err != nil:
					t.Fatalf("Transition(%q, %q) = %v, want nil", from, to, err)
				case !want && err == nil:
					t.Fatalf("Transition(%q, %q) = nil, want error", from, to)
				case !want && from.Valid() && to.Valid() && !errors.Is(err, ErrInvalidTransition):
					t.Fatalf("Transition(%q, %q) = %v, want ErrInvalidTransition", from, to, err)
				case !want && (!from.Valid() || !to.Valid()) && !errors.Is(err, ErrInvalidStatus):
					t.Fatalf("Transition(%q, %q) = %v, want ErrInvalidStatus", from, to, err)
				}
			})
		}
	}
}

func TestTransitionMessages(t *testing.T) {
	err := Transition(StatusSuspended, StatusSuspended, "again")
	if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "already SUSPENDED") {
		t.Errorf("same-status Transition = %v, want ErrInvalidTransition naming the current status", err)
	}
	err = Transition(StatusRevoked, StatusActive, "")
	if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "from REVOKED to ACTIVE") {
		t.Errorf("Transition out of REVOKED = %v, want ErrInvalidTransition naming both statuses", err)
	}
}

func TestTransitionReason(t *testing.T) {
	tests := []struct {
		name    string
		from    Status
		to      Status
		reason  string
		wantErr error
	}{
		{name: "suspend with reason is allowed", from: StatusActive, to: StatusSuspended, reason: "operator request"},
		{name: "suspend without reason is rejected", from: StatusActive, to: StatusSuspended, reason: "", wantErr: ErrReasonRequired},
		{name: "suspend with blank reason is rejected", from: StatusActive, to: StatusSuspended, reason: " \t\n", wantErr: ErrReasonRequired},
		{name: "deprecate with reason is allowed", from: StatusActive, to: StatusDeprecated, reason: "replaced by v2.0.0"},
		{name: "deprecate without reason is rejected", from: StatusActive, to: StatusDeprecated, wantErr: ErrReasonRequired},
		{name: "revoke with reason is allowed", from: StatusPending, to: StatusRevoked, reason: "key compromised"},
		{name: "revoke without reason is rejected", from: StatusPending, to: StatusRevoked, wantErr: ErrReasonRequired},
		{name: "revoke from deprecated without reason is rejected", from: StatusDeprecated, to: StatusRevoked, wantErr: ErrReasonRequired},
		{name: "activate without reason is allowed", from: StatusPending, to: StatusActive},
		{name: "activate with reason is allowed", from: StatusSuspended, to: StatusActive, reason: "investigated, fine"},
		{name: "expire without reason is allowed", from: StatusActive, to: StatusExpired},
		{name: "expire with blank reason is allowed", from: StatusActive, to: StatusExpired, reason: " "},
		{name: "reason of 500 characters is allowed", from: StatusActive, to: StatusRevoked, reason: strings.Repeat("é", 500)},
		{name: "reason of 501 characters is rejected", from: StatusActive, to: StatusRevoked, reason: strings.Repeat("a", 501), wantErr: ErrInvalidReason},
		{name: "long optional reason is rejected too", from: StatusPending, to: StatusActive, reason: strings.Repeat("a", 501), wantErr: ErrInvalidReason},
		{name: "multi-line reason is allowed", from: StatusActive, to: StatusSuspended, reason: "line one\n\tline two"},
		{name: "NUL in reason is rejected", from: StatusActive, to: StatusSuspended, reason: "bad\x00", wantErr: ErrInvalidReason},
		{name: "escape in reason is rejected", from: StatusActive, to: StatusSuspended, reason: "\x1b[31mred", wantErr: ErrInvalidReason},
		{name: "C1 control in reason is rejected", from: StatusActive, to: StatusSuspended, reason: "x\u0085y", wantErr: ErrInvalidReason},
		{name: "invalid UTF-8 in reason is rejected", from: StatusActive, to: StatusSuspended, reason: "bad\xff", wantErr: ErrInvalidReason},
		{name: "forbidden transition wins over missing reason", from: StatusRevoked, to: StatusSuspended, wantErr: ErrInvalidTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Transition(tt.from, tt.to, tt.reason)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Transition(%s, %s, %q) = %v, want nil", tt.from, tt.to, tt.reason, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Transition(%s, %s, %q) = %v, want %v", tt.from, tt.to, tt.reason, err, tt.wantErr)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Status // "" when an error is expected
	}{
		{name: "upper case parses", in: "ACTIVE", want: StatusActive},
		{name: "lower case parses", in: "suspended", want: StatusSuspended},
		{name: "mixed case parses", in: "Deprecated", want: StatusDeprecated},
		{name: "pending parses", in: "PENDING", want: StatusPending},
		{name: "revoked parses", in: "revoked", want: StatusRevoked},
		{name: "expired parses", in: "EXPIRED", want: StatusExpired},
		{name: "empty is rejected", in: ""},
		{name: "unknown is rejected", in: "DELETED"},
		{name: "surrounding space is rejected", in: " ACTIVE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidStatus) {
					t.Fatalf("ParseStatus(%q) = %q, %v; want ErrInvalidStatus", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseStatus(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestStatusPredicates(t *testing.T) {
	tests := []struct {
		status   Status
		terminal bool
		serving  bool
	}{
		{StatusPending, false, false},
		{StatusActive, false, true},
		{StatusSuspended, false, false},
		{StatusDeprecated, false, false},
		{StatusRevoked, true, false},
		{StatusExpired, true, false},
		{"", false, false},
		{"active", false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			if got := tt.status.Terminal(); got != tt.terminal {
				t.Errorf("Terminal() = %v, want %v", got, tt.terminal)
			}
			if got := tt.status.Serving(); got != tt.serving {
				t.Errorf("Serving() = %v, want %v", got, tt.serving)
			}
			if tt.status.Terminal() {
				for _, to := range allStatuses {
					if CanTransition(tt.status, to) {
						t.Errorf("terminal %s can go to %s", tt.status, to)
					}
				}
			}
		})
	}
}

func TestRegistrationValidateNew(t *testing.T) {
	good := Registration{
		AgentID: "0b9d6c1e-agent",
		Name:    Name{Form: FormV2, Version: "1.0.0", Host: "agent.example.com"},
		Status:  StatusPending,
	}
	tests := []struct {
		name    string
		edit    func(r *Registration)
		wantErr error // nil for success; errAny for an unclassified error
	}{
		{name: "pending registration is accepted", edit: func(*Registration) {}},
		{name: "active registration is accepted", edit: func(r *Registration) { r.Status = StatusActive }},
		{name: "draft-00 name is accepted", edit: func(r *Registration) {
			r.Name = Name{Form: FormDraft00, Version: "2.1", Protocol: "a2a", AgentID: "bot", Capability: "Doc", Provider: "Acme"}
		}},
		{name: "optional reason is accepted", edit: func(r *Registration) { r.StatusReason = "auto-approved" }},
		{name: "missing agent ID is rejected", edit: func(r *Registration) { r.AgentID = "" }, wantErr: errAny},
		{name: "zero name is rejected", edit: func(r *Registration) { r.Name = Name{} }, wantErr: ErrInvalidName},
		{name: "non-canonical name is rejected", edit: func(r *Registration) { r.Name.Host = "Agent.example.com" }, wantErr: ErrInvalidName},
		{name: "suspended start is rejected", edit: func(r *Registration) { r.Status = StatusSuspended; r.StatusReason = "x" }, wantErr: ErrInvalidStatus},
		{name: "revoked start is rejected", edit: func(r *Registration) { r.Status = StatusRevoked; r.StatusReason = "x" }, wantErr: ErrInvalidStatus},
		{name: "empty status is rejected", edit: func(r *Registration) { r.Status = "" }, wantErr: ErrInvalidStatus},
		{name: "too-long reason is rejected", edit: func(r *Registration) { r.StatusReason = strings.Repeat("a", 501) }, wantErr: ErrInvalidReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			err := r.ValidateNew()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("ValidateNew() = %v, want nil", err)
			case tt.wantErr == errAny && err == nil:
				t.Fatal("ValidateNew() = nil, want error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("ValidateNew() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")
