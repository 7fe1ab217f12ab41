// Package examples holds no code: it owns the tests that keep the files of examples/ (the
// Dockerfiles, dockerinit.toml, the boot menu entries and the top layer) in step with the
// packages that read or write them, so that an example cannot rot unnoticed.
package examples
