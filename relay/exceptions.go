package relay

import (
	"net/http"

	"github.com/offboard/offboard/internal/runs"
)

// exceptionOwner is who owns an exception nobody has taken: the people
// the configuration lists as security, who may retry or waive it.
const exceptionOwner = "security (people.security)"

// handleExceptions is GET /exceptions: every open exception and waiver of
// every Deprovision run (runs.Exceptions), read from Temporal. Runs that
// could not be read are listed and "complete" is false: an incomplete
// registry must not look complete.
func (rl *Relay) handleExceptions(w http.ResponseWriter, r *http.Request, _ token) {
	reg, err := runs.Exceptions(r.Context(), rl.c, exceptionOwner, rl.now())
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, reg)
}
