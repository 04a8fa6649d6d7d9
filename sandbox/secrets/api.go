package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// listPage caps ListSecrets pages below MaxResults, as Secrets Manager may,
// so every caller exercises paging.
const listPage = 3

type handler func(s *Sim, body []byte) (any, *apiError)

var operations = map[string]handler{
	"CreateSecret":             (*Sim).createSecret,
	"DescribeSecret":           (*Sim).describeSecret,
	"GetSecretValue":           (*Sim).getSecretValue,
	"PutSecretValue":           (*Sim).putSecretValue,
	"UpdateSecretVersionStage": (*Sim).updateSecretVersionStage,
	"ListSecrets":              (*Sim).listSecrets,
	"TagResource":              (*Sim).tagResource,
	"UntagResource":            (*Sim).untagResource,
	"DeleteSecret":             (*Sim).deleteSecret,
	"RotateSecret":             (*Sim).rotateSecret,
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // already in memory: see readBody
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, &apiError{http.StatusNotFound, "UnknownOperationException", "Unknown operation"})
		return
	}
	if e := s.authenticate(r, body); e != nil {
		writeError(w, e)
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	h := operations[op]
	if !ok || h == nil {
		writeError(w, errorf("UnknownOperationException", "Unknown operation %s", r.Header.Get("X-Amz-Target")))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	out, e := h(s, body)
	if e != nil {
		writeError(w, e)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	writeJSON(w, http.StatusOK, out)
}

func decode(body []byte, in any) *apiError {
	if err := json.Unmarshal(body, in); err != nil {
		return errorf("SerializationException", "Start of structure or map found where not expected.")
	}
	return nil
}

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func tagsJSON(tags []tag) []tagJSON {
	out := make([]tagJSON, 0, len(tags))
	for _, t := range tags {
		out = append(out, tagJSON{t.key, t.value})
	}
	return out
}

// secretFor finds the secret in SecretId; callers hold s.mu. live refuses
// one scheduled for deletion, as every value operation does.
func (s *Sim) secretFor(id string, live bool) (*secret, *apiError) {
	if id == "" {
		return nil, validation("1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
	}
	sec := s.find(id)
	if sec == nil {
		return nil, notFound()
	}
	if live && sec.deleted != nil {
		return nil, markedForDeletion()
	}
	return sec, nil
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (sec *secret) staged(stage string) *version {
	for _, v := range sec.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

// move attaches stage to v, taking it off whichever version had it; the
// version that loses AWSCURRENT becomes AWSPREVIOUS, as Secrets Manager does.
func (sec *secret) move(stage string, v *version) {
	old := sec.staged(stage)
	if old == v {
		return
	}
	if old != nil {
		old.stages = slices.DeleteFunc(old.stages, func(x string) bool { return x == stage })
	}
	if stage == Current && old != nil {
		if prev := sec.staged(Previous); prev != nil {
			prev.stages = slices.DeleteFunc(prev.stages, func(x string) bool { return x == Previous })
		}
		old.stages = append(old.stages, Previous)
	}
	if v != nil {
		v.stages = append(v.stages, stage)
	}
}

func (sec *secret) versionsToStages() map[string][]string {
	out := map[string][]string{}
	for _, v := range sec.versions {
		if len(v.stages) > 0 {
			out[v.id] = slices.Clone(v.stages)
		}
	}
	return out
}

var (
	nameChars  = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	tagChars   = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	validStage = regexp.MustCompile(`^[A-Za-z0-9_.:/=+\-@]{1,256}$`)
)

func checkToken(token string) *apiError {
	if len(token) < 32 || len(token) > 64 {
		return validation("1 validation error detected: Value '%s' at 'clientRequestToken' failed to satisfy constraint: Member must have length between 32 and 64", token)
	}
	return nil
}

func checkTags(tags []tagJSON) *apiError {
	for i, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 || !tagChars.MatchString(t.Key) || !tagChars.MatchString(t.Value) ||
			strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return validation("1 validation error detected: Value at 'tags.%d' failed to satisfy constraint: tag keys are 1-128 and values 0-256 characters of letters, digits, spaces and _.:/=+-@, not starting aws:", i+1)
		}
	}
	return nil
}

// value takes SecretString or SecretBinary, exactly one.
func value(str *string, bin []byte) (*string, []byte, *apiError) {
	switch {
	case str != nil && bin != nil:
		return nil, nil, invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.")
	case str != nil:
		if len(*str) > 65536 {
			return nil, nil, validation("1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536")
		}
		return str, nil, nil
	case bin != nil:
		if len(bin) > 65536 {
			return nil, nil, validation("1 validation error detected: Value at 'secretBinary' failed to satisfy constraint: Member must have length less than or equal to 65536")
		}
		return nil, bin, nil
	}
	return nil, nil, nil
}

func newToken() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return uuidFrom(hex.EncodeToString(raw[:]))
}

type createIn struct {
	Name               string    `json:"Name"`
	ClientRequestToken string    `json:"ClientRequestToken"`
	Description        string    `json:"Description"`
	SecretString       *string   `json:"SecretString"`
	SecretBinary       []byte    `json:"SecretBinary"`
	Tags               []tagJSON `json:"Tags"`
}

type arnOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId,omitempty"`
	VersionStages []string `json:"VersionStages,omitempty"`
}

func (s *Sim) createSecret(body []byte) (any, *apiError) {
	var in createIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !nameChars.MatchString(in.Name) {
		return nil, validation("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9/_+=.@-]{1,512}", in.Name)
	}
	str, bin, e := value(in.SecretString, in.SecretBinary)
	if e != nil {
		return nil, e
	}
	if e := checkTags(in.Tags); e != nil {
		return nil, e
	}
	token := in.ClientRequestToken
	if token == "" {
		token = newToken()
	} else if e := checkToken(token); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.secrets[in.Name]; ok {
		if old.deleted != nil {
			return nil, errorf("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	now := time.Now().UTC()
	sec := &secret{name: in.Name, arn: s.arn(in.Name), description: in.Description, created: now, lastChanged: now}
	for _, t := range in.Tags {
		sec.setTag(t.Key, t.Value)
	}
	out := arnOut{ARN: sec.arn, Name: sec.name}
	if str != nil || bin != nil {
		sec.versions = []*version{{id: token, str: str, bin: bin, stages: []string{Current}, created: now}}
		out.VersionId = token
	}
	s.secrets[sec.name] = sec
	return out, nil
}

func (sec *secret) setTag(k, v string) {
	if i := slices.IndexFunc(sec.tags, func(t tag) bool { return t.key == k }); i >= 0 {
		sec.tags[i].value = v
		return
	}
	sec.tags = append(sec.tags, tag{k, v})
}

type idIn struct {
	SecretId string `json:"SecretId"`
}

type rotationRules struct {
	AutomaticallyAfterDays *int64  `json:"AutomaticallyAfterDays,omitempty"`
	ScheduleExpression     *string `json:"ScheduleExpression,omitempty"`
	Duration               *string `json:"Duration,omitempty"`
}

type describeOut struct {
	ARN                string              `json:"ARN"`
	Name               string              `json:"Name"`
	Description        string              `json:"Description,omitempty"`
	CreatedDate        float64             `json:"CreatedDate"`
	LastChangedDate    float64             `json:"LastChangedDate"`
	LastRotatedDate    *float64            `json:"LastRotatedDate,omitempty"`
	LastAccessedDate   *float64            `json:"LastAccessedDate,omitempty"`
	DeletedDate        *float64            `json:"DeletedDate,omitempty"`
	RotationEnabled    bool                `json:"RotationEnabled"`
	RotationLambdaARN  string              `json:"RotationLambdaARN,omitempty"`
	RotationRules      *rotationRules      `json:"RotationRules,omitempty"`
	Tags               []tagJSON           `json:"Tags,omitempty"`
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
}

func (sec *secret) describe() describeOut {
	out := describeOut{
		ARN: sec.arn, Name: sec.name, Description: sec.description,
		CreatedDate: epoch(sec.created), LastChangedDate: epoch(sec.lastChanged),
		LastRotatedDate: epochPtr(sec.lastRotated), LastAccessedDate: epochPtr(sec.lastAccessed), DeletedDate: epochPtr(sec.deleted),
		RotationEnabled: sec.rotationLambda != "", RotationLambdaARN: sec.rotationLambda,
		VersionIdsToStages: sec.versionsToStages(),
	}
	if len(sec.tags) > 0 {
		out.Tags = tagsJSON(sec.tags)
	}
	if sec.rotationLambda != "" {
		days := sec.rotationDays
		out.RotationRules = &rotationRules{AutomaticallyAfterDays: &days}
	}
	return out
}

func (s *Sim) describeSecret(body []byte) (any, *apiError) {
	var in idIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, false)
	if e != nil {
		return nil, e
	}
	return sec.describe(), nil
}

type getIn struct {
	SecretId     string `json:"SecretId"`
	VersionId    string `json:"VersionId"`
	VersionStage string `json:"VersionStage"`
}

type getOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"`
	VersionStages []string `json:"VersionStages"`
	CreatedDate   float64  `json:"CreatedDate"`
}

func (s *Sim) getSecretValue(body []byte) (any, *apiError) {
	var in getIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	var v *version
	switch {
	case in.VersionId != "":
		v = sec.version(in.VersionId)
		if v == nil || (in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage)) {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.VersionId)
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = Current
		}
		v = sec.staged(stage)
		if v == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
	}
	now := time.Now().UTC().Truncate(24 * time.Hour) // AWS keeps the date only
	sec.lastAccessed = &now
	return getOut{ARN: sec.arn, Name: sec.name, VersionId: v.id, SecretString: v.str, SecretBinary: v.bin,
		VersionStages: slices.Clone(v.stages), CreatedDate: epoch(v.created)}, nil
}

type putIn struct {
	SecretId           string   `json:"SecretId"`
	ClientRequestToken string   `json:"ClientRequestToken"`
	SecretString       *string  `json:"SecretString"`
	SecretBinary       []byte   `json:"SecretBinary"`
	VersionStages      []string `json:"VersionStages"`
}

// putSecretValue adds a version. The token is the version id: the same
// token with the same value again changes nothing; with another value it is
// refused (ResourceExistsException), so a retry can never overwrite a value.
func (s *Sim) putSecretValue(body []byte) (any, *apiError) {
	var in putIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	str, bin, e := value(in.SecretString, in.SecretBinary)
	if e != nil {
		return nil, e
	}
	if str == nil && bin == nil {
		return nil, invalidParameter("You must provide either SecretString or SecretBinary.")
	}
	token := in.ClientRequestToken
	if token == "" {
		token = newToken()
	} else if e := checkToken(token); e != nil {
		return nil, e
	}
	stages := in.VersionStages
	if stages == nil {
		stages = []string{Current}
	}
	for _, st := range stages {
		if !validStage.MatchString(st) {
			return nil, validation("1 validation error detected: Value '%s' at 'versionStages' failed to satisfy constraint", st)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	if old := sec.version(token); old != nil {
		same := (str != nil && old.str != nil && *str == *old.str) || (bin != nil && old.bin != nil && bytes.Equal(bin, old.bin))
		if !same {
			return nil, errorf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		return arnOut{ARN: sec.arn, Name: sec.name, VersionId: old.id, VersionStages: slices.Clone(old.stages)}, nil
	}
	now := time.Now().UTC()
	v := &version{id: token, str: str, bin: bin, created: now}
	sec.versions = append(sec.versions, v)
	for _, st := range stages {
		sec.move(st, v)
	}
	sec.lastChanged = now
	return arnOut{ARN: sec.arn, Name: sec.name, VersionId: v.id, VersionStages: slices.Clone(v.stages)}, nil
}

type stageIn struct {
	SecretId            string `json:"SecretId"`
	VersionStage        string `json:"VersionStage"`
	MoveToVersionId     string `json:"MoveToVersionId"`
	RemoveFromVersionId string `json:"RemoveFromVersionId"`
}

func (s *Sim) updateSecretVersionStage(body []byte) (any, *apiError) {
	var in stageIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !validStage.MatchString(in.VersionStage) {
		return nil, validation("1 validation error detected: Value null at 'versionStage' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	holder := sec.staged(in.VersionStage)
	if in.RemoveFromVersionId != "" && (holder == nil || holder.id != in.RemoveFromVersionId) {
		return nil, invalidParameter("The staging label %s is not attached to version %s.", in.VersionStage, in.RemoveFromVersionId)
	}
	switch {
	case in.MoveToVersionId != "":
		to := sec.version(in.MoveToVersionId)
		if to == nil {
			return nil, errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.MoveToVersionId)
		}
		if holder != nil && holder != to && in.RemoveFromVersionId == "" {
			return nil, invalidParameter("The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", in.VersionStage, holder.id)
		}
		sec.move(in.VersionStage, to)
	case in.RemoveFromVersionId != "":
		if in.VersionStage == Current {
			return nil, invalidParameter("You can't remove the staging label AWSCURRENT from a version; move it to another version instead.")
		}
		sec.move(in.VersionStage, nil)
	default:
		return nil, invalidParameter("You must specify MoveToVersionId, RemoveFromVersionId, or both.")
	}
	sec.lastChanged = time.Now().UTC()
	return arnOut{ARN: sec.arn, Name: sec.name}, nil
}

type filter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

type listIn struct {
	MaxResults             *int32   `json:"MaxResults"`
	NextToken              string   `json:"NextToken"`
	Filters                []filter `json:"Filters"`
	IncludePlannedDeletion bool     `json:"IncludePlannedDeletion"`
}

type listEntry struct {
	ARN                    string              `json:"ARN"`
	Name                   string              `json:"Name"`
	Description            string              `json:"Description,omitempty"`
	CreatedDate            float64             `json:"CreatedDate"`
	LastChangedDate        float64             `json:"LastChangedDate"`
	LastRotatedDate        *float64            `json:"LastRotatedDate,omitempty"`
	DeletedDate            *float64            `json:"DeletedDate,omitempty"`
	RotationEnabled        bool                `json:"RotationEnabled"`
	RotationLambdaARN      string              `json:"RotationLambdaARN,omitempty"`
	Tags                   []tagJSON           `json:"Tags,omitempty"`
	SecretVersionsToStages map[string][]string `json:"SecretVersionsToStages,omitempty"`
}

type listOut struct {
	SecretList []listEntry `json:"SecretList"`
	NextToken  string      `json:"NextToken,omitempty"`
}

// matches applies one filter as Secrets Manager does: any value matches
// (a "!" value negates), by prefix; tag keys, tag values and names
// case-sensitive, descriptions and "all" not. Tag keys and tag values are
// matched independently of each other.
func (sec *secret) matches(f filter) bool {
	var fields []string
	fold := false
	switch f.Key {
	case "name":
		fields = []string{sec.name}
	case "description":
		fields, fold = []string{sec.description}, true
	case "tag-key":
		for _, t := range sec.tags {
			fields = append(fields, t.key)
		}
	case "tag-value":
		for _, t := range sec.tags {
			fields = append(fields, t.value)
		}
	case "all":
		fields, fold = []string{sec.name, sec.description}, true
		for _, t := range sec.tags {
			fields = append(fields, t.key, t.value)
		}
	default:
		return false
	}
	for _, want := range f.Values {
		neg := strings.HasPrefix(want, "!")
		want = strings.TrimPrefix(want, "!")
		hit := slices.ContainsFunc(fields, func(got string) bool {
			if fold {
				return strings.HasPrefix(strings.ToLower(got), strings.ToLower(want))
			}
			return strings.HasPrefix(got, want)
		})
		if hit != neg {
			return true
		}
	}
	return false
}

func (s *Sim) listSecrets(body []byte) (any, *apiError) {
	var in listIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	for _, f := range in.Filters {
		switch f.Key {
		case "name", "description", "tag-key", "tag-value", "all", "primary-region", "owning-service":
		default:
			return nil, validation("1 validation error detected: Value '%s' at 'filters.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]", f.Key)
		}
		if len(f.Values) == 0 || len(f.Values) > 10 {
			return nil, validation("1 validation error detected: Value at 'filters.values' failed to satisfy constraint: Member must have length between 1 and 10")
		}
	}
	size := listPage
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, validation("1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100", *in.MaxResults)
		}
		size = min(size, int(*in.MaxResults))
	}
	start := 0
	if in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		off, convErr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || convErr != nil || off < 0 || !strings.HasPrefix(string(raw), "offset:") {
			return nil, errorf("InvalidNextTokenException", "The NextToken value is invalid.")
		}
		start = off
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []*secret
	for _, n := range s.names() {
		sec := s.secrets[n]
		if sec.deleted != nil && !in.IncludePlannedDeletion {
			continue
		}
		if !slices.ContainsFunc(in.Filters, func(f filter) bool { return !sec.matches(f) }) {
			hits = append(hits, sec)
		}
	}
	start = min(start, len(hits))
	end := min(len(hits), start+size)
	out := listOut{SecretList: []listEntry{}}
	for _, sec := range hits[start:end] {
		d := sec.describe()
		out.SecretList = append(out.SecretList, listEntry{ARN: d.ARN, Name: d.Name, Description: d.Description,
			CreatedDate: d.CreatedDate, LastChangedDate: d.LastChangedDate, LastRotatedDate: d.LastRotatedDate, DeletedDate: d.DeletedDate,
			RotationEnabled: d.RotationEnabled, RotationLambdaARN: d.RotationLambdaARN, Tags: d.Tags, SecretVersionsToStages: d.VersionIdsToStages})
	}
	if end < len(hits) {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return out, nil
}

type tagIn struct {
	SecretId string    `json:"SecretId"`
	Tags     []tagJSON `json:"Tags"`
}

func (s *Sim) tagResource(body []byte) (any, *apiError) {
	var in tagIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if len(in.Tags) == 0 {
		return nil, validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	if e := checkTags(in.Tags); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	for _, t := range in.Tags {
		sec.setTag(t.Key, t.Value)
	}
	if len(sec.tags) > 50 {
		return nil, errorf("LimitExceededException", "You have exceeded the maximum number of tags (50) for this secret.")
	}
	return nil, nil
}

type untagIn struct {
	SecretId string   `json:"SecretId"`
	TagKeys  []string `json:"TagKeys"`
}

func (s *Sim) untagResource(body []byte) (any, *apiError) {
	var in untagIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	sec.tags = slices.DeleteFunc(sec.tags, func(t tag) bool { return slices.Contains(in.TagKeys, t.key) })
	return nil, nil
}

type deleteIn struct {
	SecretId                   string `json:"SecretId"`
	RecoveryWindowInDays       *int64 `json:"RecoveryWindowInDays"`
	ForceDeleteWithoutRecovery *bool  `json:"ForceDeleteWithoutRecovery"`
}

type deleteOut struct {
	ARN          string  `json:"ARN"`
	Name         string  `json:"Name"`
	DeletionDate float64 `json:"DeletionDate"`
}

// deleteSecret schedules the deletion: the secret stays, DescribeSecret
// shows DeletedDate, and every value operation is refused.
func (s *Sim) deleteSecret(body []byte) (any, *apiError) {
	var in deleteIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		if force {
			return nil, invalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
		}
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, invalidParameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	now := time.Now().UTC()
	if force {
		delete(s.secrets, sec.name)
		return deleteOut{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(now)}, nil
	}
	sec.deleted = &now
	return deleteOut{ARN: sec.arn, Name: sec.name, DeletionDate: epoch(now.AddDate(0, 0, int(days)))}, nil
}

type rotateIn struct {
	SecretId           string         `json:"SecretId"`
	ClientRequestToken string         `json:"ClientRequestToken"`
	RotationLambdaARN  string         `json:"RotationLambdaARN"`
	RotationRules      *rotationRules `json:"RotationRules"`
	RotateImmediately  *bool          `json:"RotateImmediately"`
}

// rotateSecret runs the configured rotation function's four steps at once
// (createSecret as AWSPENDING, setSecret, testSecret, finishSecret moving
// AWSCURRENT). Without a rotation function it is refused, as AWS does.
func (s *Sim) rotateSecret(body []byte) (any, *apiError) {
	var in rotateIn
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	token := in.ClientRequestToken
	if token == "" {
		token = newToken()
	} else if e := checkToken(token); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.secretFor(in.SecretId, true)
	if e != nil {
		return nil, e
	}
	if in.RotationLambdaARN != "" {
		sec.rotationLambda = in.RotationLambdaARN
	}
	if in.RotationRules != nil && in.RotationRules.AutomaticallyAfterDays != nil {
		sec.rotationDays = *in.RotationRules.AutomaticallyAfterDays
	}
	if sec.rotationLambda == "" {
		return nil, errorf("InvalidRequestException", "No Lambda rotation function ARN is associated with this secret.")
	}
	if v := sec.version(token); v != nil {
		return arnOut{ARN: sec.arn, Name: sec.name, VersionId: v.id}, nil
	}
	if in.RotateImmediately != nil && !*in.RotateImmediately {
		return arnOut{ARN: sec.arn, Name: sec.name}, nil
	}
	if pending := sec.staged(Pending); pending != nil && pending != sec.staged(Current) {
		return nil, invalidParameter("A previous rotation isn't complete. That rotation will be reattempted.")
	}
	cur := sec.staged(Current)
	var old []byte
	if cur != nil {
		old = cur.value()
	}
	now := time.Now().UTC()
	next := rotated(old)
	v := &version{id: token, str: &next, created: now}
	sec.versions = append(sec.versions, v)
	sec.move(Pending, v)
	sec.move(Current, v)
	sec.move(Pending, nil)
	sec.lastChanged, sec.lastRotated = now, &now
	return arnOut{ARN: sec.arn, Name: sec.name, VersionId: v.id}, nil
}

// rotated is what the simulated rotation function writes: a JSON object
// keeps its keys with every string but "username" replaced; anything else
// becomes a fresh random string.
func rotated(old []byte) string {
	fresh := func() string {
		var raw [24]byte
		_, _ = rand.Read(raw[:])
		return base64.RawURLEncoding.EncodeToString(raw[:])
	}
	var obj map[string]any
	if json.Unmarshal(old, &obj) == nil && obj != nil {
		for k, v := range obj {
			if _, isString := v.(string); isString && k != "username" {
				obj[k] = fresh()
			}
		}
		b, _ := json.Marshal(obj)
		return string(b)
	}
	return fresh()
}
