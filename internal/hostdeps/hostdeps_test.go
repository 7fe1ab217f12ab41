package hostdeps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// debianName is what Debian policy allows in a package name.
var debianName = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)

func TestPackages(t *testing.T) {
	pkgs := Packages()
	if len(pkgs) == 0 {
		t.Fatal("the list is empty")
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		if !debianName.MatchString(p.Name) {
			t.Errorf("%q is not a Debian package name", p.Name)
		}
		if seen[p.Name] {
			t.Errorf("%s is listed twice", p.Name)
		}
		seen[p.Name] = true
	}
}

func TestMissing(t *testing.T) {
	absent := func(missing ...string) func(string) (string, error) {
		return func(c string) (string, error) {
			if slices.Contains(missing, c) {
				return "", exec.ErrNotFound
			}
			return "/usr/bin/" + c, nil
		}
	}
	if got := Missing(absent()); got != nil {
		t.Errorf("with every command found: %q, want nil", got)
	}
	got := Missing(absent("losetup", "mount", "/usr/bin/docker", "qemu-system-x86_64"))
	if want := []string{"qemu-system-x86", "docker.io", "mount"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q (once each, in the list's order)", got, want)
	}
}

// notListed are packages a test may name without the list holding them, and why.
var notListed = map[string]string{
	"golang":    "Go is installed by hand (the README): bookworm's is too old",
	"coreutils": "Essential: on every Debian system",
}

// installHint is how a test's skip reason names packages: "(apt-get install a b)".
var installHint = regexp.MustCompile(`\(apt-get install ([a-z0-9.+ -]+)\)`)

// TestEveryNamedPackageListed reads the repository's Go files for the packages its tests name
// in their skip reasons (testenv.Tools, "(apt-get install ...)"): make deps must install each,
// or make test would leave that test a reason to skip.
func TestEveryNamedPackageListed(t *testing.T) {
	listed := map[string]bool{}
	for _, p := range Packages() {
		listed[p.Name] = true
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Build output, VCS data and caches hold no source of ours.
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "out" || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		check := func(where, names string) {
			for _, name := range strings.Fields(names) {
				found++
				if !listed[name] && notListed[name] == "" {
					t.Errorf("%s: %s names the Debian package %s, which internal/hostdeps/packages does not list: add it there, or make deps leaves that test a reason to skip", rel, where, name)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				// testenv.Tools(t, "pkg1 pkg2", tools...)
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Tools" && len(n.Args) >= 2 {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "testenv" {
						if s, ok := stringLit(n.Args[1]); ok {
							check("testenv.Tools", s)
						}
					}
				}
			case *ast.BasicLit:
				if s, ok := stringLit(n); ok {
					for _, m := range installHint.FindAllStringSubmatch(s, -1) {
						check("a skip reason", m[1])
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatalf("found no package named under %s: the scan is broken", root)
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
