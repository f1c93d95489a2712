package store

import "context"

// MigrateUpTo applies the migrations up to version (tests that start from an older schema).
func (s *Store) MigrateUpTo(ctx context.Context, version int64) error {
	p, err := s.migrationProvider()
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}
