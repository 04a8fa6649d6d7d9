package ldapdir

import (
	"encoding/json"
	"net/http"
)

// Handler serves the sandbox's admin view over HTTP, like the other simulators:
//
//	GET    /_sandbox/users/{login}   the user entry (memberOf computed), 404 if none
//	GET    /_sandbox/groups/{cn}     the group entry
//	POST   /_sandbox/faults          inject a Fault: {"op":"search","code":51,"message":"busy","count":1}
//	DELETE /_sandbox/faults          clear every fault
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	entry := func(find func(string) (Entry, bool), key string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e, ok := find(r.PathValue(key))
			if !ok {
				http.Error(w, "no such entry", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(e)
		}
	}
	mux.HandleFunc("GET /_sandbox/users/{login}", entry(s.User, "login"))
	mux.HandleFunc("GET /_sandbox/groups/{cn}", entry(s.Group, "cn"))
	mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.Fail(f)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
