package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testHash is `openssl passwd -6 -salt saltsalt hello`.
const testHash = "$6$saltsalt$YTeBOLnmm3CoeJTzBuijUEtOEWCqrw/nQ8/AeMmON4LGp3k0ZiMjC1OdqzWFUAfDQBvYkOch9BWtQTBcZ1E/p0"

// typedConsole is a console on which typed is all the input.
func typedConsole(t *testing.T, typed string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	go func() {
		w.WriteString(typed)
		w.Close()
	}()
	return r
}

const asked = "Password for the rescue shell: "

func TestReadLock(t *testing.T) {
	tests := []struct {
		name    string
		config  string // "-": no file; "dir": a directory where the file should be
		typed   string
		wantErr string // "": the shell may open
		ask     bool   // the password is asked for
	}{
		{name: "no configuration: no password", config: "-"},
		{name: "no [rescue] table", config: "image = \"desktop\"\n"},
		{name: "the right password", config: "[rescue]\npassword_hash = \"" + testHash + "\"\n", typed: "hello\n", ask: true},
		{name: "a typo elsewhere still asks", config: "imagee = 1\n[rescue]\npassword_hash = \"" + testHash + "\"\n",
			wantErr: "read the password from the console: EOF", ask: true},
		{name: "malformed hash locks", config: "[rescue]\npassword_hash = \"$6$x$short\"\n", typed: "hello\n",
			wantErr: "rescue shell locked: /etc/dockerinit.toml: rescue.password_hash: password hash: the digest is not 86 characters"},
		{name: "not TOML locks", config: "[rescue\n", typed: "hello\n", wantErr: "rescue shell locked: decode /etc/dockerinit.toml"},
		{name: "unreadable locks", config: "dir", typed: "hello\n", wantErr: "rescue shell locked: read "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dockerinit.toml")
			switch tt.config {
			case "-":
			case "dir":
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(path, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			data, rerr := os.ReadFile(path)
			err := lockFrom(data, rerr).Unlock(typedConsole(t, tt.typed), &out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Unlock = %v, want %q", err, tt.wantErr)
			}
			if got := strings.Contains(out.String(), asked); got != tt.ask {
				t.Errorf("asked for the password: %v, want %v (printed %q)", got, tt.ask, out.String())
			}
		})
	}
}

// TestRescuePasswordOutlivesTheFile checks that the password PID 1 read as it started still
// guards the shell once the file is gone, as it is after a switch_root whose exec failed.
func TestRescuePasswordOutlivesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dockerinit.toml")
	if err := os.WriteFile(path, []byte("[rescue]\npassword_hash = \""+testHash+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rescueConfig = path
	t.Cleanup(func() { rescueConfig = configPath })
	LoadRescuePassword()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := shellLock().Unlock(typedConsole(t, ""), &out)
	if err == nil || !strings.Contains(out.String(), asked) {
		t.Fatalf("with the file gone, Unlock = %v and printed %q; want the password asked for, and no shell", err, out.String())
	}
}
