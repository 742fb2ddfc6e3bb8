package nodeapi

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/cockroachdb/errors/errorspb"
	"github.com/gogo/protobuf/proto"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Errors on the wire.
//
// A handler's error leaves the node as a gRPC status whose code is the
// error's Code and whose message is its Error() (without hints, as before
// any hop), with the whole error, encoded by errors.EncodeError, in the
// status details. The client decodes it with errors.DecodeError, so the
// caller gets an error that errors.Is matches against the sentinels of
// the node that made it, with its hints, details and gRPC code: a node
// that returns it again (a forwarded call) sends all of it on, through
// any number of hops.
//
// An error with no encoded detail (the connection failed, the call timed
// out, gRPC itself refused the method, or the node runs a release that
// sent hints as text) is returned with the status message and code.

// encodedErrorTypeURL names errorspb.EncodedError in a google.protobuf.Any,
// as a gogoproto-aware status library would.
const encodedErrorTypeURL = "type.googleapis.com/cockroach.errorspb.EncodedError"

// WithCode annotates err with the gRPC code the node answers it with. The
// code travels with the error: a node forwarding it answers with the same
// code.
func WithCode(err error, code codes.Code) error {
	if err == nil {
		return nil
	}
	return &withCode{cause: err, code: code}
}

// Code is the gRPC code of err: the outermost WithCode, the code of a gRPC
// status it wraps, DeadlineExceeded or Canceled for the context's errors,
// else Unknown. OK for nil.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var w *withCode
	if errors.As(err, &w) {
		return w.code
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// ToStatus turns a handler's error into the gRPC status error it is sent
// as (nil stays nil).
func ToStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, bare := err.(interface{ GRPCStatus() *status.Status }); bare {
		if _, ours := err.(*withCode); !ours {
			return err // a status made as such (no such method): as it is
		}
	}
	enc := errors.EncodeError(ctx, err)
	b, merr := enc.Marshal()
	p := &spb.Status{Code: int32(Code(err)), Message: err.Error()}
	if merr == nil {
		p.Details = []*anypb.Any{{TypeUrl: encodedErrorTypeURL, Value: b}}
	}
	return status.ErrorProto(p)
}

// FromStatus turns the error of a call into the error the remote handler
// returned, if it sent one; otherwise into an error with the status's
// message and code. An error that is no gRPC status is returned as is.
func FromStatus(ctx context.Context, err error) error {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	for _, d := range s.Proto().GetDetails() {
		if d.GetTypeUrl() != encodedErrorTypeURL {
			continue
		}
		var enc errorspb.EncodedError
		if uerr := enc.Unmarshal(d.GetValue()); uerr != nil {
			return err
		}
		dec := errors.DecodeError(ctx, enc)
		if Code(dec) != s.Code() {
			dec = WithCode(dec, s.Code())
		}
		return dec
	}
	return WithCode(legacyError(s.Message()), s.Code())
}

// legacyError is the error of a status without an encoded error: gRPC's
// own (the connection failed, the deadline passed, no such method) or a
// handler's of a release that sent its hints as "HINT:" lines after the
// message. Its message is the status message, without the hints.
func legacyError(msg string) error {
	lines := strings.Split(msg, "\n")
	var hints []string
	for len(lines) > 1 && strings.HasPrefix(lines[len(lines)-1], "HINT: ") {
		hints = append([]string{strings.TrimPrefix(lines[len(lines)-1], "HINT: ")}, hints...)
		lines = lines[:len(lines)-1]
	}
	err := errors.New(strings.Join(lines, "\n"))
	for _, h := range hints {
		err = errors.WithHint(err, h)
	}
	return err
}

// withCode carries a gRPC code. It is registered with cockroachdb/errors,
// so the code survives EncodeError and DecodeError.
type withCode struct {
	cause error
	code  codes.Code
}

func (w *withCode) Error() string { return w.cause.Error() }
func (w *withCode) Cause() error  { return w.cause }
func (w *withCode) Unwrap() error { return w.cause }

// GRPCStatus lets gRPC's status.Code and status.FromError see the code.
func (w *withCode) GRPCStatus() *status.Status { return status.New(w.code, w.Error()) }

func (w *withCode) Format(s fmt.State, verb rune) { errors.FormatError(w, s, verb) }

func (w *withCode) SafeFormatError(p errors.Printer) (next error) {
	if p.Detail() {
		p.Printf("gRPC code: %d", w.code)
	}
	return w.cause
}

func init() {
	key := errors.GetTypeKey((*withCode)(nil))
	errors.RegisterWrapperEncoder(key, func(_ context.Context, err error) (string, []string, proto.Message) {
		return "", []string{strconv.Itoa(int(err.(*withCode).code))}, nil
	})
	errors.RegisterWrapperDecoder(key, func(_ context.Context, cause error, _ string, details []string, _ proto.Message) error {
		code := codes.Unknown
		if len(details) > 0 {
			if c, err := strconv.Atoi(details[0]); err == nil {
				code = codes.Code(c)
			}
		}
		return &withCode{cause: cause, code: code}
	})
}
