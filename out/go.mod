// out/ holds the test fixtures (a mounted Debian root at times) and boot files, not Go code:
// this go.mod keeps ./... patterns from walking into it.
module scratch
