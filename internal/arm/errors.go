package arm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// Error is an ARM error: an HTTP status and the body
// {"error":{"code","message","target"}}. Every failure a client sees goes
// through it, once, in WriteError.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError is an ARM error with a formatted message.
func NewError(status int, code, target, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Target: target, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with the given code.
func BadRequest(code, target, format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, code, target, format, args...)
}

// InvalidParameter is the usual validation error of ARM resource providers.
func InvalidParameter(target, format string, args ...any) *Error {
	return BadRequest("InvalidParameter", target, format, args...)
}

// ResourceNotFound is ARM's 404 for a resource of a group.
func ResourceNotFound(typ, name, group string) *Error {
	return NewError(http.StatusNotFound, "ResourceNotFound", "",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", typ, name, group)
}

// ResourceGroupNotFound is ARM's 404 for a missing group.
func ResourceGroupNotFound(group string) *Error {
	return NewError(http.StatusNotFound, "ResourceGroupNotFound", "", "Resource group '%s' could not be found.", group)
}

// OperationNotAllowed is the 409 a busy resource answers.
func OperationNotAllowed(format string, args ...any) *Error {
	return NewError(http.StatusConflict, "OperationNotAllowed", "", format, args...)
}

// AnotherOperationInProgress is AKS's 409 for a write while another
// operation on the cluster runs.
func AnotherOperationInProgress() *Error {
	return OperationNotAllowed("Operation is not allowed: Another operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
}

// IsNotFound says whether err is an ARM 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// WriteError writes err as ARM's error body. An error that is not an ARM
// error is logged and answered as a 500 without its text.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		if tooLarge(err) {
			e = BadRequest("RequestContentTooLarge", "", "The request content is too large to be stored.")
		} else {
			slog.Error("ARM request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			e = &Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
				Message: "The server encountered an internal error. Please retry the request."}
		}
	}
	w.Header().Set("x-ms-error-code", e.Code)
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}

// WriteJSON writes v as the JSON body of a response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

// EncodeJSON is v's body as WriteJSON writes it, for a handler that keeps
// it (a cache of rendered answers) and writes it with WriteEncoded.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteEncoded writes a body EncodeJSON made.
func WriteEncoded(w http.ResponseWriter, status int, body []byte) {
	writeJSONHeader(w, status)
	w.Write(body)
}

func writeJSONHeader(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
}

// Detail is the message of a service error made as fmt.Errorf("%w: ...",
// sentinel, ...), without the sentinel's prefix: the part a user reads in
// the ARM error the sentinel maps to.
func Detail(err error) string {
	msg := err.Error()
	if cause := errors.Unwrap(err); cause != nil {
		return strings.TrimPrefix(msg, cause.Error()+": ")
	}
	return msg
}
