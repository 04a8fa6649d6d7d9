package awsiam

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/offboard/offboard/internal/control"
	"github.com/offboard/offboard/internal/retryafter"
)

// defaultRetryAfter is the wait suggested when IAM throttles without a
// Retry-After header, which is what it normally does.
const defaultRetryAfter = time.Second

// recorder keeps the last HTTP exchange of one Observe/Enforce/Resolve, for
// the receipt and for classifying a failure.
type recorder struct {
	mu   sync.Mutex
	last control.Response
}

func (r *recorder) set(resp control.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = resp
}

func (r *recorder) response() control.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

type recorderKey struct{}

func withRecorder(ctx context.Context) (context.Context, *recorder) {
	rec := &recorder{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

// recordResponses is an SDK stack option: the innermost deserialize step,
// it sees each raw HTTP response before the SDK parses it, and notes the
// status, request id and body digest (the body itself is never kept).
func recordResponses(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("OffboardRecordResponse",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			rec, _ := ctx.Value(recorderKey{}).(*recorder)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if rec != nil && !ok {
				rec.set(control.Response{}) // no answer: an earlier call's must not stand for this one
			}
			if rec == nil || !ok || resp.Body == nil {
				return out, md, err
			}
			body, readErr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			_ = resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			rec.set(control.NewResponse(resp.Header.Get("X-Amzn-Requestid"), resp.StatusCode, body))
			if err == nil && readErr != nil {
				err = readErr
			}
			return out, md, err
		}), middleware.After)
}

// requireLists is an IAM stack option: a List call's 2xx must carry its
// list element (IAM sends <AccessKeyMetadata/> when there are none), a Get
// call's its entity. The SDK reads an empty body, or a result without the
// element, as an empty list ("no active keys", "no groups", "no account"
// would rest on nothing) or as a nil entity (GetUser's was dereferenced).
func requireLists(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("OffboardRequireLists",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			op := middleware.GetOperationName(ctx)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if err != nil || !ok {
				return out, md, err
			}
			missing := ""
			switch {
			case strings.HasPrefix(op, "List"):
				missing = nilList(out.Result)
			case strings.HasPrefix(op, "Get") && noEntity(out.Result):
				missing = "entity" // an empty 200: GetUser's User was nil (and dereferenced)
			}
			if missing != "" {
				// A DeserializationError with the response: classify makes a read's transient.
				err = &smithyhttp.ResponseError{Response: resp, Err: &smithy.DeserializationError{
					Err: fmt.Errorf("%s answered %d without its %s list", op, resp.StatusCode, missing)}}
			}
			return out, md, err
		}), middleware.Before)
}

// noEntity: an output struct whose exported pointer fields are all nil
// carries nothing the call was asked for.
func noEntity(result any) bool {
	v := reflect.ValueOf(result)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	v = v.Elem()
	has := false
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && v.Type().Field(i).IsExported() {
			if !f.IsNil() {
				return false
			}
			has = true
		}
	}
	return has
}

// nilList names the first list field of an output struct that is nil (its
// element was absent), or "".
func nilList(result any) string {
	v := reflect.ValueOf(result)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "any"
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && v.Type().Field(i).IsExported() && f.IsNil() {
			return v.Type().Field(i).Name
		}
	}
	return ""
}

// classify turns an SDK error into a *control.Error of the right kind.
func classify(op string, err error, rec *recorder) *control.Error {
	last := rec.response()
	e := &control.Error{Op: op, Err: err, Digest: last.Digest, RequestID: last.RequestID}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		e.HTTPStatus = respErr.HTTPStatusCode()
	}
	var withID interface{ ServiceRequestID() string }
	if errors.As(err, &withID) && withID.ServiceRequestID() != "" {
		e.RequestID = withID.ServiceRequestID()
	}
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var deser *smithy.DeserializationError
	garbled := code == "" && errors.As(err, &deser)
	if garbled {
		e.Err = &unparseable{digest: last.Digest, err: err}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		e.Kind = control.ErrTransient
	case code == "NoSuchEntity" || code == "NoSuchEntityException":
		e.Kind = control.ErrNotFound
	case code == "Throttling" || code == "ThrottlingException" || code == "RequestLimitExceeded" ||
		code == "TooManyRequestsException" || e.HTTPStatus == http.StatusTooManyRequests:
		e.Kind = control.ErrRateLimited
		e.RetryAfter = defaultRetryAfter
		if respErr != nil && respErr.Response != nil {
			e.RetryAfter = cmp.Or(retryafter.Header(respErr.Response.Header, time.Now()), defaultRetryAfter)
		}
	case code == "AccessDenied" || code == "AccessDeniedException" || code == "InvalidClientTokenId" ||
		code == "SignatureDoesNotMatch" || code == "ExpiredToken" || code == "UnrecognizedClientException" ||
		code == "MissingAuthenticationToken" || e.HTTPStatus == 401 || e.HTTPStatus == 403:
		e.Kind = control.ErrUnauthorized
		e.Err = &missingPermission{action: action(err), err: err}
	case code == "ServiceFailure" || code == "ServiceUnavailable" || code == "InternalFailure" ||
		code == "ConcurrentModification":
		e.Kind = control.ErrTransient
	case isPagingError(err):
		e.Kind = control.ErrUnexpected
	case garbled && e.HTTPStatus == http.StatusNotFound:
		// Not IAM saying "no such entity": a wrong endpoint or a proxy. Never "gone".
		e.Kind = control.ErrUnexpected
	case e.HTTPStatus >= 300:
		e.Kind = control.ClassifyStatus(e.HTTPStatus)
	case e.HTTPStatus != 0 && isTransport(err):
		e.Kind = control.ErrTransient // the body broke off mid-read
	case e.HTTPStatus != 0 && isRead(action(err)):
		// A read's 2xx the SDK could not parse (a proxy's page, a cut-off
		// body): asking again may cure it, and nothing was changed.
		e.Kind = control.ErrTransient
	case e.HTTPStatus != 0:
		// A write's 2xx the SDK could not parse: what it did is unknown.
		e.Kind = control.ErrPermanent
	case isTransport(err):
		e.Kind = control.ErrTransient
	default:
		var invalid smithy.InvalidParamsError
		if errors.As(err, &invalid) || garbled {
			e.Kind = control.ErrPermanent
		} else {
			e.Kind = control.ErrTransient
		}
	}
	return e
}

func isTransport(err error) bool {
	var netErr net.Error
	var sendErr *smithyhttp.RequestSendError
	return errors.As(err, &netErr) || errors.As(err, &sendErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// action names the IAM/STS permission the failing call needed, e.g.
// "iam:UpdateAccessKey". The innermost operation wins: an AssumeRole that
// fails while signing an IAM call names sts:AssumeRole.
func action(err error) string {
	name := ""
	for err != nil {
		var opErr *smithy.OperationError
		if !errors.As(err, &opErr) {
			break
		}
		name = strings.ToLower(opErr.ServiceID) + ":" + opErr.OperationName
		err = opErr.Err
	}
	return name
}

// isRead reports whether an action ("iam:ListAccessKeys") only reads.
func isRead(action string) bool {
	_, op, _ := strings.Cut(action, ":")
	return strings.HasPrefix(op, "List") || strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "Describe")
}

type missingPermission struct {
	action string
	err    error
}

func (m *missingPermission) Error() string {
	if m.action == "" {
		return m.err.Error()
	}
	return "missing permission " + m.action + ": " + m.err.Error()
}

func (m *missingPermission) Unwrap() error { return m.err }

type unparseable struct {
	digest string
	err    error
}

func (u *unparseable) Error() string {
	return "unparseable response body (" + u.digest + "): " + u.err.Error()
}

func (u *unparseable) Unwrap() error { return u.err }

// isNoSuchEntity reports whether IAM said the thing asked about does not exist.
func isNoSuchEntity(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchEntity"
}
