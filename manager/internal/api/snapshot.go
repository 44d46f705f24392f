package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/knaight/knaight/manager/internal/agents"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/manager/internal/gateways"
	"github.com/knaight/knaight/manager/internal/snapshots"
	"github.com/knaight/knaight/shared/snapshot"
)

func (s *Server) newSnapshotBuilder() *snapshots.Builder {
	return &snapshots.Builder{
		Pool: s.Pool, Gateways: s.gateways(), AgentKeys: &agents.Keys{Sealer: s.Sealer}, TokenKeys: s.tokenKeys, Issuer: s.Issuer, Now: s.Now,
		Settings: snapshot.Settings{
			ClockSkewSeconds:    int(snapshots.DefaultClockSkew / time.Second),
			MaxStalenessSeconds: int(s.GatewayMaxStaleness / time.Second),
		},
	}
}

// registerSnapshot serves GET /api/v1/gateway/snapshot as a plain handler,
// outside the OpenAPI document like the OPA bundle service: its answer is
// conditional (304 with an ETag and no body) and may be held for a long
// poll, which huma's one-status-one-body operations do not express.
func (s *Server) registerSnapshot(r chi.Router) {
	r.Get(SnapshotPath, s.serveSnapshot)
}

// gatewayFromRequest authenticates a plain handler's gateway or answers
// 401 and returns false.
func (s *Server) gatewayFromRequest(w http.ResponseWriter, r *http.Request) (gateways.Authenticated, bool) {
	g, err := s.authenticateGateway(r.Context(), r.Header.Get("Authorization"))
	if errors.Is(err, fault.ErrUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="knaight-gateway"`)
		writeProblem(w, http.StatusUnauthorized, "a valid gateway credential is required (Authorization: Bearer kngw....)")
		return g, false
	}
	if err != nil {
		s.internalError(w, r, "authenticate gateway", err)
		return g, false
	}
	return g, true
}

func snapshotETag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// serveSnapshot answers a gateway's poll: its environment's snapshot,
// signed and sealed to it, with the version as ETag. A request whose
// If-None-Match names the current version gets 304, after holding it up to
// the Prefer: wait=N it asked for, until the version changes.
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	gw, ok := s.gatewayFromRequest(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	inm := r.Header.Get("If-None-Match")
	version, err := s.awaitSnapshot(ctx, gw.OrganizationID, inm, longPollWait(r))
	if err != nil {
		s.internalError(w, r, "snapshot version", err)
		return
	}
	if inm != "" && etagMatches(inm, strconv.FormatUint(version, 10)) {
		h := w.Header()
		h.Set("ETag", snapshotETag(version))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	built, err := s.snapshots.Get(ctx, gw.OrganizationID, gw.Environment, version)
	if errors.Is(err, gateways.ErrNotConfigured) {
		writeProblem(w, http.StatusServiceUnavailable, "the environment's snapshot cannot be built yet: "+err.Error())
		return
	}
	if err != nil {
		s.internalError(w, r, "build snapshot", err)
		return
	}
	env, err := snapshot.SealSigned(built.Payload, built.Signature, built.Snapshot.Version, built.KeyID, gw.ID.String(), gw.SealKey)
	if err != nil {
		s.internalError(w, r, "seal snapshot", err)
		return
	}
	body, err := json.Marshal(env)
	if err != nil {
		s.internalError(w, r, "encode snapshot", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("ETag", snapshotETag(built.Snapshot.Version))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// awaitSnapshot returns the organization's snapshot version, at once if it
// is not the one inm names, else when it changes or wait ends.
func (s *Server) awaitSnapshot(ctx context.Context, org uuid.UUID, inm string, wait time.Duration) (uint64, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Subscribe before reading, so a change committed after the read
		// always wakes us.
		changed := s.Changes.Changed(org)
		v, err := snapshots.Version(ctx, s.Pool, org)
		if err != nil || inm == "" || wait <= 0 || !etagMatches(inm, strconv.FormatUint(v, 10)) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			return snapshots.Version(ctx, s.Pool, org)
		case <-s.Changes.Stopped():
			return v, nil
		case <-changed:
		}
	}
}
