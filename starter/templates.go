package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// templatesCmd is `starter templates list|show|create|update`: notification templates, kept
// as JSON files (the API's body: id, channel, subject, body, html_body, description).
func templatesCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "templates", Short: "Manage notification templates (versioned on every update)"}
	cmd.AddCommand(templatesListCmd(c), templatesShowCmd(c), templatesWriteCmd(c, false), templatesWriteCmd(c, true))
	return cmd
}

type templateRow struct {
	ID             string    `json:"id"`
	Channel        string    `json:"channel"`
	Description    string    `json:"description"`
	Version        int       `json:"version"`
	CurrentVersion int       `json:"current_version"`
	Subject        string    `json:"subject"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func templatesListCmd(c *apiClient) *cobra.Command {
	var channel string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List notification templates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/notifications/templates"+query("channel", channel), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[templateRow](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tCHANNEL\tVERSION\tSUBJECT\tDESCRIPTION\tUPDATED")
			for _, t := range rows {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Channel, t.Version, t.Subject, t.Description,
					t.UpdatedAt.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&channel, "channel", "", "email or sms")
	lf.add(cmd)
	return cmd
}

func templatesShowCmd(c *apiClient) *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a template (JSON); --version for an older one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/notifications/templates/" + args[0]
			if version > 0 {
				path += query("version", strconv.Itoa(version))
			}
			return c.showJSON(path)
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "a version number (default: the current one)")
	return cmd
}

// templatesWriteCmd is `templates create -f template.json` (POST) or `templates update ID -f
// template.json` (PUT: a new version with the file's content).
func templatesWriteCmd(c *apiClient, update bool) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create -f template.json",
		Short: `Create a template from a JSON file ({"id", "channel", "subject", "body", "html_body"}; - reads standard input)`,
		Args:  cobra.NoArgs,
	}
	if update {
		cmd.Use, cmd.Short, cmd.Args = "update ID -f template.json", "Store a JSON file as a template's new version", cobra.ExactArgs(1)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body, err := readJSONFile(cmd, file)
		if err != nil {
			return err
		}
		method, path := "POST", "/api/v1/notifications/templates"
		if update {
			method, path = "PUT", path+"/"+args[0]
		}
		var t templateRow
		raw, _, err := c.call(method, path, body, &t)
		if err != nil || c.printJSON(raw) {
			return err
		}
		fmt.Fprintf(c.out, "template %s (%s) version %d\n", t.ID, t.Channel, t.Version)
		return nil
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the template, a JSON file (- for standard input)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}
