package awsiam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/offboard/offboard/internal/control"
)

// denyAllName is the inline policy containment puts on the user.
const denyAllName = "OffboardDenyAll"

type statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Action    any                       `json:"Action,omitempty"`
	NotAction any                       `json:"NotAction,omitempty"`
	Resource  any                       `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

// denyAllDocument denies everything, and says so twice: without a condition
// (long-lived keys and console sessions) and for sessions whose token was
// issued before revokeBefore. The second is what revokes STS sessions
// (GetSessionToken, GetFederationToken) already handed out: aws:TokenIssueTime
// only exists for temporary credentials, so the conditioned statement alone
// would leave long-lived credentials untouched.
func denyAllDocument(revokeBefore time.Time) string {
	doc := policyDoc{Version: "2012-10-17", Statement: []statement{
		{Sid: "OffboardDenyAll", Effect: "Deny", Action: "*", Resource: "*"},
		{Sid: "OffboardRevokeSessions", Effect: "Deny", Action: "*", Resource: "*", Condition: map[string]map[string]any{
			"DateLessThan": {"aws:TokenIssueTime": revokeBefore.UTC().Format(time.RFC3339)},
		}},
	}}
	b, _ := json.Marshal(doc)
	return string(b)
}

// revokeTime is when sessions stop being honoured: now, or the termination's
// effective time if that is later, rounded up to a whole second.
func revokeTime(since time.Time) time.Time {
	t := time.Now().UTC()
	if since.After(t) {
		t = since.UTC()
	}
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t
}

func enforceDenyAll(r *run) error {
	_, err := r.c.iam.PutUserPolicy(r.ctx, &iam.PutUserPolicyInput{
		UserName:       aws.String(r.user),
		PolicyName:     aws.String(denyAllName),
		PolicyDocument: aws.String(denyAllDocument(revokeTime(r.params.Since))),
	})
	return err
}

func observeDenyAll(r *run) (control.Observation, error) {
	var out *iam.GetUserPolicyOutput
	err, userErr := r.withUserCheck(func(ctx context.Context) (err error) {
		out, err = r.c.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String(r.user), PolicyName: aws.String(denyAllName)})
		return err
	})
	if isNoSuchEntity(err) {
		if userErr != nil {
			return control.Observation{}, userErr
		}
		return control.Observation{Holds: false, Detail: "no " + denyAllName + " policy"}, nil
	}
	if err != nil {
		return control.Observation{}, err
	}
	// IAM returns policy documents URL-encoded.
	raw := aws.ToString(out.PolicyDocument)
	if dec, err := url.QueryUnescape(raw); err == nil {
		raw = dec
	}
	holds, detail := evaluateDenyAll(raw, r.params.Since)
	return control.Observation{Holds: holds, Detail: detail}, nil
}

// evaluateDenyAll reports whether doc denies every action on every resource
// and revokes sessions issued before since (when since is set).
func evaluateDenyAll(raw string, since time.Time) (bool, string) {
	var doc policyDoc
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return false, denyAllName + " is not valid JSON"
	}
	denyAll := false
	var revokedBefore time.Time
	for _, s := range doc.Statement {
		if !strings.EqualFold(s.Effect, "Deny") || s.NotAction != nil || !isStar(s.Action) || !isStar(s.Resource) {
			continue
		}
		if len(s.Condition) == 0 {
			denyAll = true
			continue
		}
		if len(s.Condition) != 1 {
			continue
		}
		for op, kv := range s.Condition {
			if op != "DateLessThan" || len(kv) != 1 {
				continue
			}
			for key, v := range kv {
				if !strings.EqualFold(key, "aws:TokenIssueTime") {
					continue
				}
				if t, ok := parseTime(v); ok && t.After(revokedBefore) {
					revokedBefore = t
				}
			}
		}
	}
	switch {
	case !denyAll:
		return false, denyAllName + " does not deny everything"
	case !since.IsZero() && revokedBefore.Before(since):
		return false, fmt.Sprintf("%s revokes sessions issued before %s, not before %s", denyAllName, fmtTime(revokedBefore), fmtTime(since))
	}
	return true, fmt.Sprintf("%s denies everything; sessions issued before %s revoked", denyAllName, fmtTime(revokedBefore))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(never)"
	}
	return t.UTC().Format(time.RFC3339)
}

func isStar(v any) bool {
	switch v := v.(type) {
	case string:
		return v == "*"
	case []any:
		for _, e := range v {
			if e == "*" {
				return true
			}
		}
	}
	return false
}

func parseTime(v any) (time.Time, bool) {
	if list, ok := v.([]any); ok && len(list) == 1 {
		v = list[0]
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

func jsonUnmarshal(raw string, v any) error { return json.Unmarshal([]byte(raw), v) }

// remarshal converts a decoded JSON value into v's type.
func remarshal(from, v any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
