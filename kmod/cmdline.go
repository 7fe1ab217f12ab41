package kmod

import (
	"os"
	"strings"

	"github.com/dockerinit/dockerinit/kmod/internal/modindex"
)

// readCmdline returns the kernel's arguments from the command line file at path (proc/cmdline),
// without those after "--", which belong to init. An unreadable file means no arguments.
func readCmdline(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	args := splitCmdline(string(b))
	for i, a := range args {
		if a == "--" {
			return args[:i]
		}
	}
	return args
}

// moduleParams returns, per module, the parameters given as "module.param=value", in the
// "param=value param2" form finit_module takes. The kernel applies such parameters to built-in
// modules itself; for loadable ones it is the loader's job, and a module loaded in the initramfs
// is never reloaded later with them.
func moduleParams(args []string) map[string]string {
	params := map[string][]string{}
	for _, arg := range args {
		key, value, hasValue := strings.Cut(arg, "=")
		mod, param, ok := strings.Cut(key, ".")
		if !ok || mod == "" || param == "" {
			continue
		}
		switch {
		case !hasValue:
		case strings.ContainsAny(value, " \t\n"):
			param += `="` + value + `"`
		default:
			param += "=" + value
		}
		mod = modindex.Name(mod)
		params[mod] = append(params[mod], param)
	}
	out := make(map[string]string, len(params))
	for mod, p := range params {
		out[mod] = strings.Join(p, " ")
	}
	return out
}

// blacklist returns the modules named by modprobe.blacklist=a,b (the argument may repeat). Like
// modprobe, it keeps them from being loaded for a device's alias, not when named directly.
func blacklist(args []string) map[string]bool {
	out := map[string]bool{}
	for _, arg := range args {
		if v, ok := strings.CutPrefix(modindex.Name(arg), "modprobe.blacklist="); ok {
			for _, m := range strings.Split(v, ",") {
				if m != "" {
					out[m] = true
				}
			}
		}
	}
	return out
}

// splitCmdline splits at white space outside double quotes and drops the quotes, as the kernel
// does: `a="b c"` and `"a=b c"` are both the argument a=b c.
func splitCmdline(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, inArg := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inArg = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
