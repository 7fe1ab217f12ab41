package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// hotplugPort is the PCIe root port a late disk is plugged into: q35's root bus takes no
// hot-plugged device, a root port does (the guest's pciehp or ACPI hot-plug sees it arrive).
const hotplugPort = "hotplug0"

// lateDisk is the QMP node and device name of the late disk.
const lateDisk = "latedisk"

// plugResult is how long after QEMU started the late disk was plugged, or why it was not.
type plugResult struct {
	at  time.Duration
	err error
}

// qmpCommand is one QMP command.
type qmpCommand struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
}

// hotplugCommands plug disk in as a raw virtio-blk-pci disk on hotplugPort, with the host
// cache settings of the other boots' -drive cache=unsafe (no O_DIRECT, flushes ignored).
func hotplugCommands(disk string) []qmpCommand {
	cache := map[string]bool{"direct": false, "no-flush": true}
	return []qmpCommand{
		{Execute: "blockdev-add", Arguments: map[string]any{
			"driver": "raw", "node-name": lateDisk, "cache": cache,
			"file": map[string]any{"driver": "file", "filename": disk, "cache": cache},
		}},
		{Execute: "device_add", Arguments: map[string]any{
			"driver": "virtio-blk-pci", "drive": lateDisk, "id": lateDisk, "bus": hotplugPort,
		}},
	}
}

// plugLate connects to QEMU's QMP socket as soon as QEMU has made it, and at time at plugs disk.
func plugLate(ctx context.Context, sock, disk string, at time.Time) error {
	conn, err := dialRetry(ctx, sock, 30*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	q := newQMP(conn)
	if err := q.handshake(); err != nil {
		return err
	}
	select {
	case <-time.After(time.Until(at)):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, c := range hotplugCommands(disk) {
		if err := q.execute(c); err != nil {
			return err
		}
	}
	return nil
}

// dialRetry connects to the unix socket sock, which QEMU makes a moment after it starts.
func dialRetry(ctx context.Context, sock string, within time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(within)
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to QEMU's QMP socket %s: %w", sock, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// qmp is a QMP client (QEMU Machine Protocol: JSON objects both ways).
type qmp struct {
	dec *json.Decoder
	w   io.Writer
}

func newQMP(rw io.ReadWriter) *qmp { return &qmp{dec: json.NewDecoder(rw), w: rw} }

// handshake reads QEMU's greeting and leaves capabilities negotiation mode.
func (q *qmp) handshake() error {
	var greeting map[string]json.RawMessage
	if err := q.dec.Decode(&greeting); err != nil {
		return fmt.Errorf("read QMP's greeting: %w", err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return fmt.Errorf("the QMP socket greeted with %v, not {\"QMP\": ...}", keys(greeting))
	}
	return q.execute(qmpCommand{Execute: "qmp_capabilities"})
}

// execute sends c and reads its reply, passing over the asynchronous events before it.
func (q *qmp) execute(c qmpCommand) error {
	msg, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := q.w.Write(append(msg, '\n')); err != nil {
		return fmt.Errorf("QMP %s: %w", c.Execute, err)
	}
	for {
		var reply map[string]json.RawMessage
		if err := q.dec.Decode(&reply); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("QMP %s: read the reply: %w", c.Execute, err)
		}
		if _, ok := reply["return"]; ok {
			return nil
		}
		if raw, ok := reply["error"]; ok {
			var e struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			}
			_ = json.Unmarshal(raw, &e)
			return fmt.Errorf("QMP %s: %s: %s", c.Execute, e.Class, e.Desc)
		}
		if _, ok := reply["event"]; ok {
			continue
		}
		return fmt.Errorf("QMP %s: a reply with neither return, error nor event: %v", c.Execute, keys(reply))
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
