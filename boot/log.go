package boot

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Logger writes dockerinit's messages to the kernel log (/dev/kmsg), so they land in dmesg and the
// journal of the booted system and show on the console as the kernel's loglevel allows (progress
// at notice hides under "quiet", errors do not). Without /dev/kmsg it writes to stderr.
type Logger struct {
	w     io.Writer
	kmsg  bool
	Debug bool
}

// Kernel log levels used (see syslog(2)).
const (
	levelErr    = 3
	levelWarn   = 4
	levelNotice = 5
	levelDebug  = 7
)

// NewLogger opens /dev/kmsg, falling back to stderr.
func NewLogger() *Logger {
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		return &Logger{w: f, kmsg: true}
	}
	return &Logger{w: os.Stderr}
}

func (l *Logger) write(level int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// One write a line: the kernel takes a record a write, and cuts long ones.
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if l.kmsg {
			fmt.Fprintf(l.w, "<%d>dockerinit: %s\n", level, line)
		} else {
			fmt.Fprintf(l.w, "dockerinit: %s\n", line)
		}
	}
}

func (l *Logger) Infof(format string, args ...any)  { l.write(levelNotice, format, args...) }
func (l *Logger) Warnf(format string, args ...any)  { l.write(levelWarn, "warning: "+format, args...) }
func (l *Logger) Errorf(format string, args ...any) { l.write(levelErr, format, args...) }
func (l *Logger) Debugf(format string, args ...any) {
	if l.Debug {
		l.write(levelNotice, format, args...)
	}
}

// devkmsgSysctl says whether writes to /dev/kmsg are rate limited: by default the kernel keeps
// 10 lines in 5 s of each writer and drops the rest, which would cut a failure's explanation (a
// line a device or image it lists) and dockerinit.debug's line a step.
const devkmsgSysctl = "/proc/sys/kernel/printk_devkmsg"

// unlimitDevkmsg turns the limit off for the boot and returns the setting it replaced ("" when
// it could not: printk.devkmsg= on the kernel command line locks it, which is the user's call).
func unlimitDevkmsg() string {
	old, err := os.ReadFile(devkmsgSysctl)
	if err != nil || os.WriteFile(devkmsgSysctl, []byte("on\n"), 0) != nil {
		return ""
	}
	return strings.TrimSpace(string(old))
}

// restoreDevkmsg puts back what unlimitDevkmsg replaced.
func restoreDevkmsg(old string) {
	if old != "" && old != "on" {
		_ = os.WriteFile(devkmsgSysctl, []byte(old+"\n"), 0)
	}
}
