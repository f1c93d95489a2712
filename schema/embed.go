// Package schema holds the SQL migrations of the app's tables, one folder per dialect, embedded
// into every binary and applied with goose at start-up (store.Migrate) or by `make db-upgrade`.
//
// Files are numbered; a change to a released table is a new file, never an edit. Both folders
// must keep the same numbers so that a deployment can move between the dialects' feature sets.
// A migration SQL cannot express is a Go file here with its number (GoMigrations), for both
// dialects: take the next number after every file of this folder and its two subfolders.
package schema

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
