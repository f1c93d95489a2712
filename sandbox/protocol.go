package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The frames a pool and its helpers exchange, one JSON document per line on the helper's
// stdin and stdout: a hello from the helper once it is ready, then one request and one response
// at a time.
type (
	hello struct {
		Hello int `json:"hello"` // the helper's pid
	}
	request struct {
		ID     uint64          `json:"id"`
		Method string          `json:"method"`
		Limits Limits          `json:"limits"`
		Args   json.RawMessage `json:"args"`
	}
	response struct {
		ID     uint64          `json:"id"`
		Result json.RawMessage `json:"result,omitempty"`
		Error  *wireError      `json:"error,omitempty"`
	}
	// wireError carries an evaluation's error with its type.
	wireError struct {
		Limit   *LimitError `json:"limit,omitempty"`
		Panic   *PanicError `json:"panic,omitempty"`
		Message string      `json:"message,omitempty"`
	}
)

// RemoteError is an evaluation error (not a limit) reported by a helper process: the engine's
// own message, such as an undefined variable.
type RemoteError struct {
	Msg string
}

func (e *RemoteError) Error() string { return e.Msg }

func toWire(err error) *wireError {
	var (
		le *LimitError
		pe *PanicError
	)
	switch {
	case errors.As(err, &le):
		return &wireError{Limit: le, Message: err.Error()}
	case errors.As(err, &pe):
		return &wireError{Panic: pe, Message: err.Error()}
	}
	return &wireError{Message: err.Error()}
}

// fromWire rebuilds the error: a limit or panic keeps its type (wrapped in the engine's message
// when the engine added context), anything else is a *RemoteError.
func (w *wireError) err() error {
	var typed error
	switch {
	case w.Limit != nil:
		typed = w.Limit
	case w.Panic != nil:
		typed = w.Panic
	default:
		return &RemoteError{Msg: w.Message}
	}
	if w.Message == "" || w.Message == typed.Error() {
		return typed
	}
	return &wrapped{msg: w.Message, err: typed}
}

// wrapped is a typed error with the message the engine gave it.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// DecodeJSON decodes a JSON document into v, numbers as json.Number when useNumber is set.
func DecodeJSON(raw []byte, v any, useNumber bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if useNumber {
		dec.UseNumber()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
