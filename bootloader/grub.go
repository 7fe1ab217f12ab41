package bootloader

import (
	"fmt"
	"strings"

	"github.com/dockerinit/dockerinit/bootparam"
)

// grubModules are the GRUB modules that read each file system blkid names.
var grubModules = map[string]string{"btrfs": "btrfs", "vfat": "fat", "ext2": "ext2", "ext3": "ext2", "ext4": "ext2", "xfs": "xfs"}

// grubFSTypes reads grubModules back; GRUB's ext2 module reads ext2, ext3 and ext4 alike.
var grubFSTypes = map[string]string{"btrfs": "btrfs", "fat": "vfat", "ext2": "ext4", "xfs": "xfs"}

// GRUBEntry is e as a GRUB menuentry. It finds the kernel's volume itself (search --fs-uuid,
// else --label), so the entry works from any grub.cfg, custom.cfg included.
func GRUBEntry(e Entry) (string, error) {
	if err := checkEntry(e); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "menuentry %s", grubQuote(e.Title))
	if e.ID != "" {
		fmt.Fprintf(&b, " --id %s", grubQuote(e.ID))
	}
	b.WriteString(" {\n")
	if !e.Volume.IsZero() {
		b.WriteString("\tinsmod part_gpt\n\tinsmod part_msdos\n")
		if m := grubModules[e.Volume.FSType]; m != "" {
			fmt.Fprintf(&b, "\tinsmod %s\n", m)
		}
		if e.Volume.UUID != "" {
			fmt.Fprintf(&b, "\tsearch --no-floppy --fs-uuid --set=root %s\n", grubQuote(e.Volume.UUID))
		} else {
			fmt.Fprintf(&b, "\tsearch --no-floppy --label --set=root %s\n", grubQuote(e.Volume.Label))
		}
	}
	if e.UKI {
		fmt.Fprintf(&b, "\tinsmod chain\n\tchainloader %s\n}\n", grubQuote(e.Kernel))
		return b.String(), nil
	}
	b.WriteString("\tlinux " + grubQuote(e.Kernel))
	for _, w := range bootparam.ParseCmdline(e.Cmdline).Words() {
		b.WriteString(" " + grubQuote(w))
	}
	b.WriteString("\n")
	if e.Initrd != "" {
		fmt.Fprintf(&b, "\tinitrd %s\n", grubQuote(e.Initrd))
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// grubQuote quotes a word for GRUB's shell-like parser when it holds anything but plain
// characters; inside single quotes nothing is special, and a single quote is written '\”.
func grubQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./,:=@+-%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ParseGRUB reads the top-level menuentries of a GRUB configuration, in order: title, --id,
// the volume searched for, and the linux and initrd lines, or the chainloader line of a UKI. Entries inside submenus are skipped.
func ParseGRUB(cfg string) ([]Entry, error) {
	var (
		entries []Entry
		cur     *Entry
		depth   int // braces open inside the current entry (if/fi do not nest braces)
		outer   int // braces open outside entries: submenus
	)
	for n, line := range strings.Split(cfg, "\n") {
		words, err := grubWords(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if len(words) == 0 {
			continue
		}
		switch {
		case cur == nil && words[len(words)-1] == "{" && (words[0] != "menuentry" || outer > 0):
			outer++
		case cur == nil && words[0] == "}" && outer > 0:
			outer--
		case cur == nil && words[0] == "menuentry":
			if len(words) < 3 || words[len(words)-1] != "{" {
				return nil, fmt.Errorf("line %d: %q: want menuentry TITLE [options] {", n+1, line)
			}
			cur = &Entry{Title: words[1]}
			for i := 2; i < len(words)-2; i++ {
				if words[i] == "--id" {
					cur.ID = words[i+1]
				}
			}
		case cur == nil:
		case words[len(words)-1] == "{":
			depth++
		case words[0] == "}" && depth > 0:
			depth--
		case words[0] == "}":
			entries = append(entries, *cur)
			cur = nil
		case depth > 0:
		case words[0] == "search":
			parseGRUBSearch(words[1:], &cur.Volume)
		case words[0] == "insmod" && len(words) == 2 && grubFSTypes[words[1]] != "":
			cur.Volume.FSType = grubFSTypes[words[1]]
		case (words[0] == "linux" || words[0] == "linuxefi") && len(words) >= 2:
			cur.Kernel, cur.Cmdline = words[1], strings.Join(words[2:], " ")
		case (words[0] == "initrd" || words[0] == "initrdefi") && len(words) >= 2:
			cur.Initrd = words[1]
		case words[0] == "chainloader" && len(words) >= 2:
			cur.Kernel, cur.UKI = words[len(words)-1], true // after any --force
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("menuentry %q has no closing }", cur.Title)
	}
	return entries, nil
}

// parseGRUBSearch reads "search [--no-floppy] --fs-uuid|--label --set=root NAME".
func parseGRUBSearch(args []string, v *Volume) {
	var by string
	for _, a := range args {
		switch {
		case a == "--fs-uuid" || a == "-u":
			by = "uuid"
		case a == "--label" || a == "-l":
			by = "label"
		case strings.HasPrefix(a, "-"):
		case by == "uuid":
			v.UUID = a
		case by == "label":
			v.Label = a
		}
	}
}

// grubWords splits one line of a GRUB script into words: single quotes keep everything,
// double quotes and backslashes escape, '#' at a word's start begins a comment. A quote left
// open is an error (GRUB would read on into the next line; entries never need that).
func grubWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inTok bool
	)
	// Bytes, not runes: every special character is ASCII, and other bytes pass through as they are.
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated single quote", line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i, inTok = i+1+end, true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`, line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("%q: unterminated double quote", line)
			}
			inTok = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inTok = true
		case c == '#' && !inTok:
			return words, nil
		case c == ' ' || c == '\t' || c == '\r' || c == ';':
			if inTok {
				words = append(words, cur.String())
			}
			cur.Reset()
			inTok = false
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words, nil
}
