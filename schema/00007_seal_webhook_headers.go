package schema

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pressly/goose/v3"
)

// SealHeaders encrypts the values of one webhook endpoint's custom headers (the webhook module's
// webhooks.SecretBox.SealHeaders, keyed by WEBHOOK_SECRET_KEY).
type SealHeaders func(endpointID string, headers map[string]string) (map[string]string, error)

// GoMigrations are the migrations SQL cannot express, for both dialects; their numbers are taken
// like those of the SQL files (this file is 00007). seal may be nil on a database without
// endpoint headers to encrypt (a new one): 00007 fails otherwise.
func GoMigrations(postgres bool, seal SealHeaders) []*goose.Migration {
	return []*goose.Migration{
		// There is no way down: the key that opens the values is not the migration's to use.
		goose.NewGoMigration(7, &goose.GoFunc{RunTx: sealWebhookHeaders(postgres, seal)}, nil),
	}
}

// sealWebhookHeaders is 00007: endpoint custom headers (often credentials: Authorization, API
// keys) were stored as plain text; from now on every value is encrypted like the signing secrets.
func sealWebhookHeaders(postgres bool, seal SealHeaders) func(context.Context, *sql.Tx) error {
	update := "UPDATE webhook_endpoints SET headers = ? WHERE id = ?"
	if postgres {
		update = "UPDATE webhook_endpoints SET headers = $1 WHERE id = $2"
	}
	return func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT id, CAST(headers AS TEXT) FROM webhook_endpoints")
		if err != nil {
			return err
		}
		sealed := map[string]string{}
		for rows.Next() {
			var id, raw string
			if err := rows.Scan(&id, &raw); err != nil {
				rows.Close()
				return err
			}
			var h map[string]string
			if err := json.Unmarshal([]byte(raw), &h); err != nil {
				rows.Close()
				return fmt.Errorf("endpoint %s: headers: %w", id, err)
			}
			if len(h) == 0 {
				continue
			}
			if seal == nil {
				rows.Close()
				return errors.New("endpoint headers must be encrypted, which needs WEBHOOK_SECRET_KEY: migrate through the service (cmd/migrate, cmd/api, worker)")
			}
			out, err := seal(id, h)
			if err != nil {
				rows.Close()
				return fmt.Errorf("endpoint %s: %w", id, err)
			}
			b, _ := json.Marshal(out)
			sealed[id] = string(b)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for id, h := range sealed {
			if _, err := tx.ExecContext(ctx, update, h, id); err != nil {
				return fmt.Errorf("endpoint %s: %w", id, err)
			}
		}
		return nil
	}
}
