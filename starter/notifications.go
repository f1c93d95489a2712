package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func notificationsCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "notifications", Short: "Send email and SMS and follow their delivery"}
	cmd.AddCommand(sendEmailCmd(c), sendSMSCmd(c), notificationShowCmd(c), notificationsListCmd(c),
		templateRenderCmd(c))
	return cmd
}

type notificationView struct {
	ID         string `json:"id"`
	Channel    string `json:"channel"`
	Status     string `json:"status"`
	Subject    string `json:"subject"`
	TemplateID string `json:"template_id"`
	CreatedAt  time.Time
	Deliveries []struct {
		ID                string `json:"id"`
		Recipient         string `json:"recipient"`
		Status            string `json:"status"`
		AttemptCount      int    `json:"attempt_count"`
		ProviderMessageID string `json:"provider_message_id"`
		Error             string `json:"error"`
		Attempts          []struct {
			Attempt   int       `json:"attempt"`
			Status    string    `json:"status"`
			Error     string    `json:"error"`
			StartedAt time.Time `json:"started_at"`
		} `json:"attempts"`
	} `json:"deliveries"`
}

// dataFlag reads --data as a JSON object, or @file for one in a file.
func dataFlag(raw string) (map[string]any, error) {
	if raw == "" {
		return nil, nil
	}
	b := []byte(raw)
	if strings.HasPrefix(raw, "@") {
		var err error
		if b, err = os.ReadFile(raw[1:]); err != nil {
			return nil, err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("--data must be a JSON object: %w", err)
	}
	return m, nil
}

func (c *apiClient) send(path string, body map[string]any, key string) error {
	var headers []string
	if key != "" {
		headers = []string{"Idempotency-Key", key}
	}
	var n notificationView
	raw, _, err := c.call("POST", path, body, &n, headers...)
	if err != nil || c.printJSON(raw) {
		return err
	}
	fmt.Fprintf(c.out, "%s %s to %d recipient(s)\n", n.ID, n.Status, len(n.Deliveries))
	return nil
}

func sendEmailCmd(c *apiClient) *cobra.Command {
	var to, cc, bcc []string
	var subject, body, html, tpl, data, sendAt, priority, replyTo, key string
	cmd := &cobra.Command{
		Use:   "send-email",
		Short: "Send an email (prints the notification id and status)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := dataFlag(data)
			if err != nil {
				return err
			}
			req := map[string]any{"to": to, "cc": cc, "bcc": bcc, "subject": subject, "body": body,
				"html_body": html, "template_id": tpl, "template_data": d, "reply_to": replyTo, "priority": priority}
			if sendAt != "" {
				req["send_at"] = sendAt
			}
			return c.send("/api/v1/notifications/email", req, key)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&to, "to", nil, "recipient (repeat or comma-separate)")
	f.StringSliceVar(&cc, "cc", nil, "copy to")
	f.StringSliceVar(&bcc, "bcc", nil, "blind copy to")
	f.StringVar(&subject, "subject", "", "subject")
	f.StringVar(&body, "body", "", "text body")
	f.StringVar(&html, "html", "", "HTML body")
	f.StringVar(&tpl, "template", "", "template id (welcome_email …)")
	f.StringVar(&data, "data", "", "template data: a JSON object, or @file")
	f.StringVar(&sendAt, "send-at", "", "RFC 3339 time to send at")
	f.StringVar(&priority, "priority", "", "low, normal, high or critical (critical ignores quiet hours)")
	f.StringVar(&replyTo, "reply-to", "", "Reply-To address")
	f.StringVar(&key, "idempotency-key", "", "send once per key")
	return cmd
}

func sendSMSCmd(c *apiClient) *cobra.Command {
	var to []string
	var message, tpl, data, sendAt, key string
	cmd := &cobra.Command{
		Use:   "send-sms",
		Short: "Send an SMS to E.164 numbers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := dataFlag(data)
			if err != nil {
				return err
			}
			req := map[string]any{"to": to, "message": message, "template_id": tpl, "template_data": d}
			if sendAt != "" {
				req["send_at"] = sendAt
			}
			return c.send("/api/v1/notifications/sms", req, key)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&to, "to", nil, "phone number in E.164 (+14155550100)")
	f.StringVar(&message, "message", "", "text")
	f.StringVar(&tpl, "template", "", "template id (verification_sms …)")
	f.StringVar(&data, "data", "", "template data: a JSON object, or @file")
	f.StringVar(&sendAt, "send-at", "", "RFC 3339 time to send at")
	f.StringVar(&key, "idempotency-key", "", "send once per key")
	return cmd
}

func notificationShowCmd(c *apiClient) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a notification with each recipient's status and attempts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n notificationView
			raw, _, err := c.call("GET", "/api/v1/notifications/"+args[0], nil, &n)
			if err != nil || c.printJSON(raw) {
				return err
			}
			fmt.Fprintf(c.out, "%s  %s  %s", n.ID, n.Channel, n.Status)
			if n.Subject != "" {
				fmt.Fprintf(c.out, "  %q", n.Subject)
			}
			if n.TemplateID != "" {
				fmt.Fprintf(c.out, "  (template %s)", n.TemplateID)
			}
			fmt.Fprintln(c.out)
			w := c.table()
			fmt.Fprintln(w, "RECIPIENT\tSTATUS\tATTEMPTS\tPROVIDER ID\tERROR")
			for _, d := range n.Deliveries {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", d.Recipient, d.Status, d.AttemptCount, d.ProviderMessageID, d.Error)
				for _, a := range d.Attempts {
					fmt.Fprintf(w, "  #%d\t%s\t%s\t\t%s\n", a.Attempt, a.Status, a.StartedAt.Local().Format(time.TimeOnly), a.Error)
				}
			}
			return w.Flush()
		},
	}
}

func notificationsListCmd(c *apiClient) *cobra.Command {
	var channel, status, recipient string
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List notifications, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, next, err := c.list("/api/v1/notifications"+query("channel", channel, "status", status, "recipient", recipient), &lf)
			if err != nil || c.printList(items, next) {
				return err
			}
			rows, err := decodeItems[notificationView](items)
			if err != nil {
				return err
			}
			w := c.table()
			fmt.Fprintln(w, "ID\tCHANNEL\tSTATUS\tRECIPIENTS\tSUBJECT")
			for _, it := range rows {
				var rs []string
				for _, d := range it.Deliveries {
					rs = append(rs, d.Recipient)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", it.ID, it.Channel, it.Status, strings.Join(rs, ","), it.Subject)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&channel, "channel", "", "email or sms")
	cmd.Flags().StringVar(&status, "status", "", "queued, sending, sent, delivered, failed, partially_failed")
	cmd.Flags().StringVar(&recipient, "recipient", "", "an email address or phone number")
	lf.add(cmd)
	return cmd
}

func templateRenderCmd(c *apiClient) *cobra.Command {
	var (
		data                string
		repeat, concurrency int
	)
	cmd := &cobra.Command{
		Use:   "render TEMPLATE_ID",
		Short: "Preview a template with data (--repeat: measure the cost of rendering)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := dataFlag(data)
			if err != nil {
				return err
			}
			path := "/api/v1/notifications/templates/" + args[0] + "/render"
			if repeat > 1 {
				return c.measure(path, map[string]any{"data": d}, repeat, concurrency)
			}
			var out struct {
				Subject  string `json:"subject"`
				Body     string `json:"body"`
				HTMLBody string `json:"html_body"`
			}
			raw, _, err := c.call("POST", path, map[string]any{"data": d}, &out)
			if err != nil || c.printJSON(raw) {
				return err
			}
			if out.Subject != "" {
				fmt.Fprintf(c.out, "Subject: %s\n\n", out.Subject)
			}
			fmt.Fprintln(c.out, out.Body)
			if out.HTMLBody != "" {
				fmt.Fprintf(c.out, "\n--- HTML ---\n%s\n", out.HTMLBody)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "template data: a JSON object, or @file")
	cmd.Flags().IntVar(&repeat, "repeat", 1, "render this many times and print throughput, latency and CPU per render")
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "requests at a time with --repeat")
	return cmd
}
