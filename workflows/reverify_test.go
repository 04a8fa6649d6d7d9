package workflows

import (
	"time"

	"github.com/offboard/offboard/internal/config"
	"github.com/offboard/offboard/internal/control"
)

// Once accounts are being deleted, a re-verification does not re-contain:
// deleting an account takes its containment with it, which is not drift.
func (s *deprovisionSuite) TestReverificationStopsOnceDeletionBegins() {
	s.cfg.Policy.Retention = config.Duration(time.Hour)
	s.cfg.Policy.Reverify = []config.Duration{config.Duration(2 * time.Hour)}
	s.newEnv()
	s.aws.failNext("delete", 100, control.ErrPermanent) // deletion stays open
	s.at(90*time.Minute, func() {
		s.Equal(PhaseDeleting, s.status().Phase)
		s.okta.setHolds("suspend", false) // as deleting the account would leave it
	})
	s.at(3*time.Hour, func() {
		st := s.status()
		s.Empty(st.Drift, "no drift reported while the accounts are deleted")
		s.Equal(1, s.okta.count("suspend"), "not re-contained during deletion")
		s.aws.failNext("delete", 0, nil)
		s.signal(SignalRetry, Retry{By: "alice@example.test", Control: "aws/delete"})
	})
	res := s.run(s.termination())
	s.Equal(PhaseCompleted, res.Phase)
	s.Equal(1, s.aws.count("delete"))
}
