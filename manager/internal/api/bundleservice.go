package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/knaight/knaight/manager/internal/auth"
	"github.com/knaight/knaight/manager/internal/bundles"
	"github.com/knaight/knaight/manager/internal/db"
	"github.com/knaight/knaight/manager/internal/fault"
	"github.com/knaight/knaight/shared/policy"
	sharedtoken "github.com/knaight/knaight/shared/token"
)

// The OPA bundle service: what a stock OPA sidecar configured with this
// manager as a service pulls bundles from and reports to. These are plain
// handlers, outside the OpenAPI document, because OPA's protocol (ETags,
// long polling, gzip uploads) is not JSON in, JSON out.
const (
	// OPABundlesPath is the prefix of GET <prefix>/{org}/{environment}.
	OPABundlesPath = "/api/v1/opa/bundles"
	// OPAStatusPath receives OPA status reports.
	OPAStatusPath = "/api/v1/opa/status"
	// OPALogsPath receives OPA decision logs.
	OPALogsPath = "/api/v1/opa/logs"

	// MaxOPAUploadBytes bounds a status report or decision log upload after
	// decompression.
	MaxOPAUploadBytes = 8 << 20
	// maxOPADecisions bounds the decisions of one upload.
	maxOPADecisions = 10000
	// maxLongPoll bounds how long a bundle request is held.
	maxLongPoll = 60 * time.Second
	// longPollMargin is kept free of the server's write timeout.
	longPollMargin = 5 * time.Second
)

func (s *Server) registerBundleService(r chi.Router) {
	r.Get(OPABundlesPath+"/{org}/{environment}", s.serveOPABundle)
	r.Post(OPAStatusPath, s.receiveOPAStatus)
	r.Post(OPALogsPath, s.receiveOPALogs)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

// opaPrincipal authenticates a sidecar's bearer API key (any role) or
// answers 401 and returns false.
func (s *Server) opaPrincipal(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	token, ok := sharedtoken.Bearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="knaight"`)
		writeProblem(w, http.StatusUnauthorized, "missing or malformed Authorization: Bearer <api key>")
		return auth.Principal{}, false
	}
	p, err := auth.Authenticate(r.Context(), s.Pool, token)
	if errors.Is(err, fault.ErrUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="knaight", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "the API key is unknown or revoked")
		return auth.Principal{}, false
	}
	if err != nil {
		s.internalError(w, r, "authenticate", err)
		return auth.Principal{}, false
	}
	if !p.Role.Allows(auth.Read) {
		writeProblem(w, http.StatusForbidden, "role "+string(p.Role)+" may not read bundles")
		return auth.Principal{}, false
	}
	return p, true
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		return
	}
	s.Log.ErrorContext(r.Context(), what, "err", err)
	writeProblem(w, http.StatusInternalServerError, "internal error")
}

// serveOPABundle serves the ACTIVE bundle of an organization's environment
// with its content hash as ETag, and holds conditional requests that ask
// for long polling until the bundle changes or the wait ends.
func (s *Server) serveOPABundle(w http.ResponseWriter, r *http.Request) {
	p, ok := s.opaPrincipal(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	env := chi.URLParam(r, "environment")
	org, err := bundles.ResolveOrganization(ctx, s.Pool, chi.URLParam(r, "org"))
	if errors.Is(err, fault.ErrNotFound) || (err == nil && org != p.OrganizationID) || (err == nil && !bundles.ValidEnvironment(env)) {
		// Another organization's bundles do not exist for this key.
		writeProblem(w, http.StatusNotFound, "no such bundle")
		return
	}
	if err != nil {
		s.internalError(w, r, "resolve organization", err)
		return
	}
	b, err := bundles.ActiveBundle(ctx, s.Pool, org, policy.Environment(env))
	if errors.Is(err, fault.ErrNotFound) {
		writeProblem(w, http.StatusNotFound, "no active bundle in "+env)
		return
	}
	if err != nil {
		s.internalError(w, r, "load active bundle", err)
		return
	}
	if etagMatches(r.Header.Get("If-None-Match"), b.ContentHash) {
		wait := longPollWait(r)
		if wait <= 0 {
			notModified(w, b.ContentHash)
			return
		}
		changed, err := s.awaitBundleChange(ctx, org, policy.Environment(env), b.ContentHash, wait)
		if err != nil {
			s.internalError(w, r, "long poll", err)
			return
		}
		if !changed {
			notModified(w, b.ContentHash)
			return
		}
		b, err = bundles.ActiveBundle(ctx, s.Pool, org, policy.Environment(env))
		if errors.Is(err, fault.ErrNotFound) {
			writeProblem(w, http.StatusNotFound, "no active bundle in "+env)
			return
		}
		if err != nil {
			s.internalError(w, r, "load active bundle", err)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", bundles.MediaType)
	h.Set("ETag", `"`+b.ContentHash+`"`)
	h.Set("Content-Length", strconv.Itoa(len(b.Tarball)))
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Tarball)
}

func notModified(w http.ResponseWriter, hash string) {
	h := w.Header()
	// OPA takes the media type on a 304 as the server's support of long
	// polling and otherwise falls back to periodic polling. net/http drops
	// a canonical Content-Type from every 304, so it is set under its
	// lower-case name, which the server writes as is (header names are
	// case-insensitive).
	h["content-type"] = []string{bundles.MediaType}
	h.Set("ETag", `"`+hash+`"`)
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusNotModified)
}

// etagMatches reports whether an If-None-Match header names hash, quoted
// (as served), unquoted (as some clients echo it), weak or "*".
func etagMatches(header, hash string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		tag = strings.TrimPrefix(tag, "W/")
		if tag == "*" || strings.Trim(tag, `"`) == hash {
			return true
		}
	}
	return false
}

// longPollWait is the wait=N of a request's Prefer header, capped at
// maxLongPoll and at the server's write timeout less a margin; 0 means no
// long polling.
func longPollWait(r *http.Request) time.Duration {
	var secs int
	for _, part := range strings.FieldsFunc(r.Header.Get("Prefer"), func(c rune) bool { return c == ';' || c == ',' || c == ' ' }) {
		if v, ok := strings.CutPrefix(strings.ToLower(part), "wait="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				secs = n
			}
		}
	}
	if secs == 0 {
		return 0
	}
	wait := min(time.Duration(min(secs, 3600))*time.Second, maxLongPoll)
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 {
		wait = min(wait, srv.WriteTimeout-longPollMargin)
	}
	return max(wait, 0)
}

// awaitBundleChange waits until the environment's ACTIVE bundle is no
// longer hash (true), the wait ends (false) or the client goes away. It is
// woken by the organization's change notifications, from any replica.
func (s *Server) awaitBundleChange(ctx context.Context, org uuid.UUID, env policy.Environment, hash string, wait time.Duration) (bool, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Subscribe before reading, so a change committed after the read
		// always wakes us.
		changed := s.Changes.Changed(org)
		h, err := bundles.ActiveHash(ctx, s.Pool, org, env)
		if err != nil || h != hash {
			return err == nil, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			h, err := bundles.ActiveHash(ctx, s.Pool, org, env)
			return err == nil && h != hash, err
		case <-s.Changes.Stopped():
			return false, nil
		case <-changed:
		}
	}
}

// readOPAUpload reads a JSON upload, gunzipping it when it says so, or
// answers 400/413 and returns false.
func readOPAUpload(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxOPAUploadBytes+1)
	switch strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			if tooLarge(err) {
				writeProblem(w, http.StatusRequestEntityTooLarge, "the upload exceeds 8 MiB")
				return nil, false
			}
			writeProblem(w, http.StatusBadRequest, "the body is not gzip-compressed")
			return nil, false
		}
		defer zr.Close()
		body = zr
	default:
		writeProblem(w, http.StatusUnsupportedMediaType, "Content-Encoding must be gzip or absent")
		return nil, false
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxOPAUploadBytes+1))
	if tooLarge(err) || len(raw) > MaxOPAUploadBytes {
		writeProblem(w, http.StatusRequestEntityTooLarge, "the upload exceeds 8 MiB")
		return nil, false
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "unreadable body: "+err.Error())
		return nil, false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		writeProblem(w, http.StatusBadRequest, "empty body")
		return nil, false
	}
	return raw, true
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// receiveOPAStatus records an OPA status report as OPA_STATUS_REPORTED.
func (s *Server) receiveOPAStatus(w http.ResponseWriter, r *http.Request) {
	p, ok := s.opaPrincipal(w, r)
	if !ok {
		return
	}
	raw, ok := readOPAUpload(w, r)
	if !ok {
		return
	}
	_, summary, err := bundles.ParseStatusReport(raw)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	err = db.InTx(r.Context(), s.Pool, func(tx pgx.Tx) error {
		return bundles.RecordStatus(r.Context(), tx, p.OrganizationID, summary, p.Actor(), s.Now())
	})
	if err != nil {
		s.internalError(w, r, "record OPA status", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// receiveOPALogs records each decision of an upload as OPA_DECISION_LOGGED,
// all in one transaction.
func (s *Server) receiveOPALogs(w http.ResponseWriter, r *http.Request) {
	p, ok := s.opaPrincipal(w, r)
	if !ok {
		return
	}
	raw, ok := readOPAUpload(w, r)
	if !ok {
		return
	}
	ds, err := bundles.ParseDecisions(raw)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(ds) > maxOPADecisions {
		writeProblem(w, http.StatusRequestEntityTooLarge, "at most "+strconv.Itoa(maxOPADecisions)+" decisions per upload")
		return
	}
	err = db.InTx(r.Context(), s.Pool, func(tx pgx.Tx) error {
		return bundles.RecordDecisions(r.Context(), tx, p.OrganizationID, ds, p.Actor(), s.Now())
	})
	if err != nil {
		s.internalError(w, r, "record OPA decisions", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
