package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/knaight/knaight/manager/internal/db"
)

// registerHealth serves the probes outside /api/v1: /healthz says the
// process serves HTTP; /readyz says it can do its work (database reachable,
// schema at this binary's version) and whether it hears change
// notifications.
func (s *Server) registerHealth(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Pool.Ping(ctx); err != nil {
			s.Log.WarnContext(ctx, "not ready: database unreachable", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
			return
		}
		if err := db.CheckSchema(ctx, s.Pool); err != nil {
			s.Log.WarnContext(ctx, "not ready: schema", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
		// Without change notifications long polls still answer, at the end
		// of their wait: the manager is degraded, not unready.
		notifications := "listening"
		if !s.Changes.Listening() {
			notifications = "reconnecting"
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "changeNotifications": notifications})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
