// Package hec simulates Splunk's HTTP Event Collector for the sandbox:
// POST /services/collector/event with "Authorization: Splunk <token>" and
// a body of concatenated JSON objects, each with an "event". It answers as
// Splunk does ({"text":"Success","code":0}; 401 code 2/4 for a missing or
// wrong token; 400 code 6 for a malformed body) and counts the events it
// took by their OCSF id (event.metadata.uid), so duplicates show.
package hec

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Server is one collector.
type Server struct {
	token string
	mu    sync.Mutex
	byID  map[string]int
	last  map[string]json.RawMessage // the event as last received, by id
	total int
}

// New accepts the given token.
func New(token string) *Server {
	return &Server{token: token, byID: map[string]int{}, last: map[string]json.RawMessage{}}
}

// Handler serves the collector's routes, and GET /counts (event id → times received).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", s.collect)
	mux.HandleFunc("GET /services/collector/health", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, "HEC is healthy", 17)
	})
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"total": s.Total(), "byId": s.Counts()})
	})
	return mux
}

func reply(w http.ResponseWriter, status int, text string, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"text": text, "code": code})
}

func (s *Server) collect(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Splunk ")
	switch {
	case auth == "":
		reply(w, http.StatusUnauthorized, "Token is required", 2)
		return
	case !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1:
		reply(w, http.StatusForbidden, "Invalid token", 4)
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	var ids []string
	var raws []json.RawMessage
	for {
		var item struct {
			Event json.RawMessage `json:"event"`
		}
		err := dec.Decode(&item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			reply(w, http.StatusBadRequest, "Invalid data format", 6)
			return
		}
		var ev struct {
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		if len(item.Event) == 0 || json.Unmarshal(item.Event, &ev) != nil {
			reply(w, http.StatusBadRequest, "Event field is required", 12)
			return
		}
		ids, raws = append(ids, ev.Metadata.UID), append(raws, item.Event)
	}
	if len(ids) == 0 {
		reply(w, http.StatusBadRequest, "No data", 5)
		return
	}
	s.mu.Lock()
	for i, id := range ids {
		s.byID[id]++
		s.last[id] = raws[i]
		s.total++
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, "Success", 0)
}

// Counts is how many times each event id arrived.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byID))
	for k, v := range s.byID {
		out[k] = v
	}
	return out
}

// Events are the events received, by id (the last copy of each).
func (s *Server) Events() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.last))
	for k, v := range s.last {
		out[k] = v
	}
	return out
}

// Total is how many events arrived.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
