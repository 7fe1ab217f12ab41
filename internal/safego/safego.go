// Package safego turns a panic in a goroutine of PID 1 into an error. A panic that no goroutine
// recovers ends the process, and when that process is PID 1 the kernel panics: the machine
// stops with a trace and no rescue shell, for what may be a bug in reading one odd device. Every
// goroutine dockerinit starts defers Recover and reports the error where it reports failures.
// It imports only the standard library, as kmod's boot half must.
package safego

import (
	"fmt"
	"runtime/debug"
)

// PanicError is a recovered panic.
type PanicError struct {
	Where string // what was running, e.g. "loading module btrfs"
	Value any    // what was passed to panic
	Stack string // of the goroutine, at the panic: for the bug report
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error while %s (a bug in dockerinit: please report it with this message): panic: %v\n%s",
		e.Where, e.Value, e.Stack)
}

// Recover, deferred at the top of a function with a named error result, stores a panic of that
// function as a *PanicError in *err and lets it return normally:
//
//	func (l *Loader) scan() (err error) {
//		defer safego.Recover("scanning sysfs", &err)
//
// It must be the deferred call itself (recover works only there), and the function's first
// defer, so that it runs last, after the others (a mutex's Unlock) have run.
func Recover(where string, err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Where: where, Value: r, Stack: string(debug.Stack())}
	}
}
