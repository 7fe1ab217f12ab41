package uki

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KeyNames are the Secure Boot keys, each signing the next one's list: the platform key (PK)
// signs the key exchange key (KEK) list, which signs the signature database (db) list; db signs
// the binaries.
var KeyNames = []string{"PK", "KEK", "db"}

// Keys is a folder holding, for each of KeyNames, NAME.key and NAME.crt (PEM), NAME.esl (the EFI
// signature list of the certificate) and NAME.auth (that list signed for enrolling), and GUID,
// the owner GUID of the lists.
type Keys struct{ Dir string }

// Path is the file NAME.EXT in the folder.
func (k Keys) Path(name, ext string) string { return filepath.Join(k.Dir, name+"."+ext) }

// Made says what MakeKeys did with each file: "made" or "kept".
type Made map[string]string

// MakeKeys fills dir with what Keys holds. A key and certificate already there are the user's:
// they are kept and never overwritten; only the missing files are made, the keys by openssl
// (RSA 2048, SHA-256, ten years), the lists by efitools. A key without its certificate (or the
// reverse) is refused.
func MakeKeys(dir string) (Made, error) {
	err := needTools("openssl", "openssl")
	if err == nil {
		err = needTools("efitools", "cert-to-efi-sig-list", "sign-efi-sig-list")
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k, made := Keys{Dir: dir}, Made{}
	guid, err := k.guid(made)
	if err != nil {
		return nil, err
	}
	for i, name := range KeyNames {
		key, crt := k.Path(name, "key"), k.Path(name, "crt")
		switch hasKey, hasCrt := exists(key), exists(crt); {
		case hasKey && hasCrt:
			if err := matching(key, crt); err != nil {
				return nil, err
			}
			made[filepath.Base(key)], made[filepath.Base(crt)] = "kept", "kept"
		case hasKey || hasCrt:
			return nil, fmt.Errorf("%s has only one of %s.key and %[2]s.crt: give both (PEM key and certificate), or remove the one to have both made", dir, name)
		default:
			if err := run("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
				"-subj", "/CN=dockerinit "+name+"/", "-keyout", key, "-out", crt); err != nil {
				return nil, err
			}
			made[filepath.Base(key)], made[filepath.Base(crt)] = "made", "made"
		}
		esl, auth := k.Path(name, "esl"), k.Path(name, "auth")
		if !exists(esl) {
			if err := run("cert-to-efi-sig-list", "-g", guid, crt, esl); err != nil {
				return nil, err
			}
			made[filepath.Base(esl)] = "made"
		}
		if !exists(auth) {
			// PK signs itself and KEK; KEK signs db.
			signer := KeyNames[max(i-1, 0)]
			if err := run("sign-efi-sig-list", "-g", guid, "-k", k.Path(signer, "key"), "-c", k.Path(signer, "crt"), name, esl, auth); err != nil {
				return nil, err
			}
			made[filepath.Base(auth)] = "made"
		}
	}
	return made, nil
}

// guid reads the folder's owner GUID, or makes one.
func (k Keys) guid(made Made) (string, error) {
	p := filepath.Join(k.Dir, "GUID")
	if b, err := os.ReadFile(p); err == nil {
		g := strings.TrimSpace(string(b))
		if !validGUID(g) {
			return "", fmt.Errorf("%s holds %q, not a GUID (8-4-4-4-12 hex digits): fix it or remove it to have one made", p, g)
		}
		return g, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80 // a random (version 4) UUID
	g := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if err := os.WriteFile(p, []byte(g+"\n"), 0o644); err != nil {
		return "", err
	}
	made["GUID"] = "made"
	return g, nil
}

// validGUID reports whether s is 8-4-4-4-12 hex digits.
func validGUID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 5 {
		return false
	}
	for i, p := range parts {
		if len(p) != []int{8, 4, 4, 4, 12}[i] || strings.Trim(strings.ToLower(p), "0123456789abcdef") != "" {
			return false
		}
	}
	return true
}

// OpenKeys checks that dir holds what signing and enrolling need: db's key and certificate,
// matching, and the three .auth lists.
func OpenKeys(dir string) (Keys, error) {
	k := Keys{Dir: dir}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return k, fmt.Errorf("--keys %s: no such folder: make the keys with mkbootimg keys --out %[1]s", dir)
	}
	var missing []string
	for _, f := range []string{k.Path("db", "key"), k.Path("db", "crt"), k.Path("PK", "auth"), k.Path("KEK", "auth"), k.Path("db", "auth")} {
		if !exists(f) {
			missing = append(missing, filepath.Base(f))
		}
	}
	if len(missing) > 0 {
		return k, fmt.Errorf("--keys %s lacks %s: run mkbootimg keys --out %[1]s (it keeps the keys there and makes what is missing)", dir, strings.Join(missing, ", "))
	}
	if err := needTools("openssl", "openssl"); err != nil {
		return k, err
	}
	return k, matching(k.Path("db", "key"), k.Path("db", "crt"))
}

// matching checks that the private key belongs to the certificate, by their public keys as
// openssl prints them.
func matching(key, crt string) error {
	fromKey, err := output("openssl", "pkey", "-in", key, "-pubout")
	if err != nil {
		return fmt.Errorf("%s is no PEM private key openssl reads: %w", key, err)
	}
	fromCrt, err := output("openssl", "x509", "-in", crt, "-noout", "-pubkey")
	if err != nil {
		return fmt.Errorf("%s is no PEM certificate openssl reads: %w", crt, err)
	}
	if !bytes.Equal(fromKey, fromCrt) {
		return fmt.Errorf("%s is not the key of %s: put the certificate's own key there (or remove both to have a pair made)", key, crt)
	}
	return nil
}

// Sign signs the EFI binary in with db's key into out; in and out may be the same file.
func Sign(k Keys, in, out string) error {
	if err := needTools("sbsigntool", "sbsign"); err != nil {
		return err
	}
	tmp := out + ".signing-tmp"
	defer os.Remove(tmp)
	if err := run("sbsign", "--key", k.Path("db", "key"), "--cert", k.Path("db", "crt"), "--output", tmp, in); err != nil {
		return err
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	return writeFile(out, b, 0o600)
}

// Verify checks that the EFI binary at path carries a valid signature by the certificate crt.
func Verify(path, crt string) error {
	if err := needTools("sbsigntool", "sbverify"); err != nil {
		return err
	}
	if err := run("sbverify", "--cert", crt, path); err != nil {
		return fmt.Errorf("%s is not signed by %s: %w", path, crt, err)
	}
	return nil
}

// needTools finds each tool on $PATH, or says which Debian package to install.
func needTools(pkg string, tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: apt-get install %s", t, pkg)
		}
	}
	return nil
}

func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

// output runs a tool and returns its standard output; its error output goes in the error.
func output(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
