// Package layering holds the test that keeps the module's imports running downward: each
// package sits in one layer and imports only from layers below it (see docs/architecture.md).
package layering
