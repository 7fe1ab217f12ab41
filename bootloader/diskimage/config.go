package diskimage

import (
	"fmt"
	"strings"

	"github.com/dockerinit/dockerinit/bootloader"
)

// The configurations below are whole files: the ESP is new, so the disk's boot manager shows
// exactly its dockerinit entries and boots the first after the timeout.

const header = "# Written by mkbootimg disk. Entries: mkbootimg entry; see the README, \"Boot managers\".\n"

func refindConf(entries []bootloader.Entry, timeout int) ([]byte, error) {
	var b strings.Builder
	b.WriteString(header)
	// rEFInd's timeout 0 waits for ever; -1 boots the default at once.
	t := timeout
	if t == 0 {
		t = -1
	}
	fmt.Fprintf(&b, "timeout %d\n", t)
	// Text mode needs no icons on the ESP; manual scanning keeps rEFInd from adding a second,
	// option-less entry for each vmlinuz it would find.
	b.WriteString("textonly\nscanfor manual\ndefault_selection 1\n")
	for _, e := range entries {
		s, err := bootloader.RefindStanza(e)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n" + s)
	}
	return []byte(b.String()), nil
}

func grubConf(entries []bootloader.Entry, timeout int, serial bool) ([]byte, error) {
	var b strings.Builder
	b.WriteString(header)
	if serial {
		b.WriteString("serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n")
	}
	fmt.Fprintf(&b, "set timeout=%d\nset default=0\n", timeout)
	for _, e := range entries {
		s, err := bootloader.GRUBEntry(e)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n" + s)
	}
	return []byte(b.String()), nil
}

// blsLoaderConf is loader.conf with def, the pattern of bootloader.BLSDefault, as the default.
func blsLoaderConf(def string, timeout int) []byte {
	// systemd-boot's timeout 0 boots at once and shows the menu only while a key is held.
	return []byte(fmt.Sprintf("%stimeout %d\ndefault %s\n", header, timeout, def))
}

// enrollConf has systemd-boot (252 and later) enroll the keys in /loader/keys/auto/ by itself
// when the firmware is in setup mode, after a countdown, then reset the machine.
const enrollConf = "secure-boot-enroll force\n"
