package graph

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// withRequestID gives every response Graph's request-id and client-request-id
// headers; the client's client-request-id is echoed back.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newUUID()
		w.Header().Set("request-id", id)
		client := r.Header.Get("client-request-id")
		if client == "" {
			client = id
		}
		w.Header().Set("client-request-id", client)
		w.Header().Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"sandbox"}}`)
		next.ServeHTTP(w, r)
	})
}

// writeJSON writes v with Graph's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes Graph's OData error body.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": message,
		"innerError": map[string]any{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        w.Header().Get("request-id"),
			"client-request-id": w.Header().Get("client-request-id"),
		},
	}})
}

// writeFault is the fault injector's error writer. A fault with a status
// below 400 stands for a misbehaving proxy: that status with a body that is
// not JSON, for testing how clients treat garbage answers.
func writeFault(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(retryAfter.Seconds()))))
	}
	if status < 400 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "<html><body><h1>Gateway says hello</h1></body></html>")
		return
	}
	code, message := "UnknownError", http.StatusText(status)
	switch status {
	case http.StatusBadRequest:
		code, message = "BadRequest", "Bad request."
	case http.StatusUnauthorized:
		code, message = "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
	case http.StatusForbidden:
		code, message = "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusNotFound:
		code, message = "Request_ResourceNotFound", "Resource does not exist or one of its queried reference-property objects are not present."
	case http.StatusTooManyRequests:
		code, message = "TooManyRequests", "Too many requests. Please retry after the delay in the Retry-After header."
	case http.StatusInternalServerError:
		code, message = "generalException", "An internal server error occurred."
	case http.StatusServiceUnavailable:
		code, message = "serviceNotAvailable", "The service is temporarily unavailable. Please retry later."
	case http.StatusGatewayTimeout:
		code, message = "gatewayTimeout", "The gateway timed out."
	}
	writeError(w, r, status, code, message)
}

// readBody decodes a JSON request body, gunzipping it when the client sent
// Content-Encoding: gzip (the Graph SDKs compress every body).
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	var body io.Reader = http.MaxBytesReader(w, r.Body, 1<<20)
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid gzip request body.")
			return false
		}
		defer zr.Close()
		body = zr
	default:
		writeError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Unsupported content encoding "+enc+".")
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content type "+ct+" is not supported.")
		return false
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload: "+err.Error())
		return false
	}
	return true
}

// base is the service root the client used, for @odata.context and nextLink.
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/v1.0"
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// limiter is a token bucket: rps tokens per second, bursting to rps.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newLimiter(rps int) *limiter {
	return &limiter{rate: float64(rps), tokens: float64(rps), last: time.Now()}
}

// take spends a token, or says how long until one is available.
func (l *limiter) take() (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = math.Min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	return false, time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
}

// throttle answers 429 with Retry-After (whole seconds, at least 1) past the rate.
func (s *Sim) throttle(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.limiter.take(); !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", "Too many requests. Please retry after the delay in the Retry-After header.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// filter is a parsed $filter: an or of ands of "property eq 'value'".
type filter [][]comparison

type comparison struct {
	prop, value string
	any         bool // prop/any(x:x eq 'value') over a collection
}

// filterable are the user properties $filter accepts here, by lower-case name.
var filterable = map[string]bool{"mail": true, "userprincipalname": true, "id": true, "displayname": true}

// filterableBools are the Boolean user properties $filter accepts (eq true/false).
var filterableBools = map[string]bool{"accountenabled": true}

func isBool(t token) bool { return !t.str && (t.text == "true" || t.text == "false") }

// filterableCollections are the collection properties $filter accepts with any().
var filterableCollections = map[string]bool{"othermails": true}

// anyLambda is the start of "otherMails/any(m:m eq 'x')" as the lexer splits it.
var anyLambda = regexp.MustCompile(`^(\w+)/any\((\w+):(\w+)$`)

// parseFilter parses the subset of OData $filter the connector uses:
// prop eq 'value' and coll/any(x:x eq 'value'), joined by and/or; a doubled
// single quote inside a string is a literal quote.
func parseFilter(src string) (filter, error) { return parseFilterOver(src, filterable) }

// parseFilterOver is parseFilter for a collection whose string properties
// $filter accepts are strings (lower-case names).
func parseFilterOver(src string, strs map[string]bool) (filter, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	var f filter
	var and []comparison
	for i := 0; ; {
		if i+2 >= len(toks) || toks[i].str || !strings.EqualFold(toks[i+1].text, "eq") || toks[i+1].str || (!toks[i+2].str && !isBool(toks[i+2])) {
			return nil, fmt.Errorf("expected property eq 'value' at token %d", i+1)
		}
		if m := anyLambda.FindStringSubmatch(toks[i].text); m != nil {
			prop := strings.ToLower(m[1])
			switch {
			case !filterableCollections[prop]:
				return nil, fmt.Errorf("property '%s' is not filterable with any", m[1])
			case !toks[i+2].str:
				return nil, fmt.Errorf("expected a string in any() at token %d", i+3)
			case m[2] != m[3]:
				return nil, fmt.Errorf("the range variable '%s' is not defined", m[3])
			case i+3 >= len(toks) || toks[i+3].str || toks[i+3].text != ")":
				return nil, fmt.Errorf("expected ')' at token %d", i+4)
			}
			and = append(and, comparison{prop: prop, value: toks[i+2].text, any: true})
			i += 4
		} else {
			prop := strings.ToLower(toks[i].text)
			switch {
			case filterableBools[prop] != isBool(toks[i+2]):
				// Graph: a Boolean property compares with true/false, a string one with 'text'.
				return nil, fmt.Errorf("a binary operator with incompatible types was detected for '%s'", toks[i].text)
			case !strs[prop] && !filterableBools[prop]:
				return nil, fmt.Errorf("property '%s' is not filterable", toks[i].text)
			}
			and = append(and, comparison{prop: prop, value: toks[i+2].text})
			i += 3
		}
		if i == len(toks) {
			return append(f, and), nil
		}
		switch op := strings.ToLower(toks[i].text); {
		case toks[i].str:
			return nil, fmt.Errorf("unexpected string at token %d", i+1)
		case op == "or":
			f, and = append(f, and), nil
		case op != "and":
			return nil, fmt.Errorf("unsupported operator '%s'", toks[i].text)
		}
		i++
	}
}

type token struct {
	text string
	str  bool // a quoted string literal
}

func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == ' ':
			i++
		case c == ')':
			toks = append(toks, token{text: ")"})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, fmt.Errorf("unterminated string literal")
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, token{text: b.String(), str: true})
		default:
			j := i
			for j < len(src) && src[j] != ' ' && src[j] != '\'' && src[j] != ')' {
				j++
			}
			toks = append(toks, token{text: src[i:j]})
			i = j
		}
	}
	return toks, nil
}

func (f filter) match(props map[string]string) bool {
	for _, and := range f {
		ok := true
		for _, c := range and {
			hit := strings.EqualFold(props[c.prop], c.value)
			if c.any {
				// A collection's values are joined by newlines.
				hit = slices.ContainsFunc(strings.Split(props[c.prop], "\n"), func(v string) bool { return strings.EqualFold(v, c.value) })
			}
			if !hit {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
