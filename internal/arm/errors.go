package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// Error is an ARM error: an HTTP status and the body
// {"error":{"code","message","target"}}. Every failure a client sees goes
// through it, once, in writeError.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, target, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Target: target, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, target, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, code, target, format, args...)
}

// invalidParameter is AKS's usual validation error.
func invalidParameter(target, format string, args ...any) *Error {
	return badRequest("InvalidParameter", target, format, args...)
}

func resourceNotFound(typ, name, group string) *Error {
	return newError(http.StatusNotFound, "ResourceNotFound", "",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", typ, name, group)
}

func resourceGroupNotFound(group string) *Error {
	return newError(http.StatusNotFound, "ResourceGroupNotFound", "", "Resource group '%s' could not be found.", group)
}

func operationNotAllowed(format string, args ...any) *Error {
	return newError(http.StatusConflict, "OperationNotAllowed", "", format, args...)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		slog.Error("ARM request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
			Message: "The server encountered an internal error. Please retry the request."}
	}
	w.Header().Set("x-ms-error-code", e.Code)
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}
